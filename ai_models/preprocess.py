"""Pixels to model input: DICOM to an 8-bit display image, then the card's input contract.

DICOM: decoded by pydicom and its pylibjpeg plugins (first frame only), Modality LUT
(rescale or LUT sequence), then to 8 bits either by the image's first VOI LUT / window
(``display_image`` default: what a radiologist sees) or by a percentile window (what the
card asks for), rounded, and MONOCHROME1 inverted so that bone is bright.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import pixel_array

from ai_models.card import DicomWindow, InputContract

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
IMAGE_WINDOW = DicomWindow(method="image")
LUT_SPAN_LIMIT = 1 << 20  # integer images with a smaller value range go through a table
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class UnsupportedImage(ValueError):
    """No pixel data, undecodable, or not a 2-D grayscale/RGB image."""


def _first_frame(ds: Dataset) -> np.ndarray:
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise UnsupportedImage("the data set has no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        array = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array
    except Exception as exc:  # decoders raise many types (ValueError, RuntimeError, ...)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise UnsupportedImage(f"pixel data cannot be decoded ({syntax}): {exc}") from exc
    return np.asarray(array)


def _lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation exactly as numpy's percentile does it."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def _weighted_percentiles(
    values: np.ndarray, counts: np.ndarray, qs: tuple[float, ...]
) -> list[float]:
    """``np.percentile`` (linear) of ``values`` each repeated ``counts`` times, without repeating."""
    order = np.argsort(values, kind="stable")
    ordered, cumulative = values[order], np.cumsum(counts[order])
    n = int(cumulative[-1])
    result = []
    for q in qs:
        rank = (q / 100.0) * (n - 1)
        below = int(np.floor(rank))
        a = float(ordered[np.searchsorted(cumulative, below, side="right")])
        b = float(ordered[np.searchsorted(cumulative, min(below + 1, n - 1), side="right")])
        result.append(_lerp(a, b, rank - below))
    return result


def _to_unit_range(
    values: np.ndarray, ds: Dataset, window: DicomWindow, counts: np.ndarray | None = None
) -> np.ndarray:
    """Modality values to [0, 1] by the chosen window (``counts``: how often each value occurs)."""
    if window.method == "percentile":
        bounds = (window.low, window.high)
        if counts is None:
            low, high = (float(v) for v in np.percentile(values, bounds))
        else:
            low, high = _weighted_percentiles(values, counts, bounds)
        return np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        indices = np.round(values).astype(np.int64)  # a LUT is indexed by integer values
        out = apply_voi_lut(indices, ds, index=0, prefer_lut=True).astype(np.float64)
        return np.clip(out / float(2**bits - 1), 0.0, 1.0)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if width > 0:
            return _window(values, center, width, function)
    low, high = float(values.min()), float(values.max())
    return np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)


def _first(value: Any) -> float:
    """The first value of a possibly multi-valued DS."""
    try:
        return float(value[0]) if not isinstance(value, str | float | int) else float(value)
    except (TypeError, IndexError):
        return float(value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 window functions, output in [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width < 1:
        width = 1.0
    return np.clip((values - (center - 0.5)) / max(width - 1.0, 1e-12) + 0.5, 0.0, 1.0)


def _values_to_8bit(
    ds: Dataset,
    stored: np.ndarray,
    window: DicomWindow,
    invert: bool,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    scaled = _to_unit_range(values, ds, window, counts) * 255.0
    if invert and str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        scaled = 255.0 - scaled
    result: np.ndarray = np.round(scaled).astype(np.uint8)
    return result


def _grey_to_8bit(ds: Dataset, pixels: np.ndarray, window: DicomWindow, invert: bool) -> np.ndarray:
    """Every step is per value, so integer images go through a table of their distinct values.

    Same result as computing on every pixel (the percentiles are taken with the counts),
    several times faster on a 16-bit radiograph.
    """
    if pixels.ndim != 2:
        raise UnsupportedImage(f"expected a 2-D grayscale frame, got shape {pixels.shape}")
    if not np.issubdtype(pixels.dtype, np.integer) or pixels.size == 0:
        return _values_to_8bit(ds, pixels, window, invert)
    low = int(pixels.min())
    span = int(pixels.max()) - low
    if span > LUT_SPAN_LIMIT:
        return _values_to_8bit(ds, pixels, window, invert)
    shifted = pixels.astype(np.int64) - low if low else pixels.astype(np.intp, copy=False)
    counts = np.bincount(shifted.ravel(), minlength=span + 1)
    present = np.flatnonzero(counts)
    stored = (present + low).astype(pixels.dtype)
    table = np.zeros(span + 1, dtype=np.uint8)
    table[present] = _values_to_8bit(ds, stored, window, invert, counts[present])
    return table[shifted]


def _colour_to_8bit(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        pixels = np.asarray(apply_color_lut(pixels, ds))
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise UnsupportedImage(f"expected an RGB frame, got shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    top = float(pixels.max()) if pixels.size else 1.0
    bits = 16 if top > 255 else 8
    scaled: np.ndarray = np.round(pixels.astype(np.float64) / (2**bits - 1) * 255.0)
    return scaled.astype(np.uint8)


def display_image(
    ds: Dataset, window: DicomWindow = IMAGE_WINDOW, *, invert_monochrome1: bool = True
) -> np.ndarray:
    """The first frame as uint8 (H, W) or (H, W, 3), as a radiologist sees it by default.

    ``window`` picks how grayscale values become 8 bits: the image's own first VOI LUT or
    window (full range when none), or a percentile window (see ``DicomWindow``). Malformed
    attributes (a bad LUT, a non-numeric value) raise ``UnsupportedImage`` with the reason.
    """
    try:
        return _display_image(ds, window, invert_monochrome1)
    except UnsupportedImage:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        raise UnsupportedImage(f"malformed image attributes ({type(exc).__name__}: {exc})") from exc


def _display_image(ds: Dataset, window: DicomWindow, invert_monochrome1: bool) -> np.ndarray:
    pixels = _first_frame(ds)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if samples == 1 and photometric != "PALETTE COLOR":
        if photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
            raise UnsupportedImage(f"photometric interpretation {photometric} with 1 sample")
        return _grey_to_8bit(ds, pixels, window, invert_monochrome1)
    if samples in (1, 3):
        return _colour_to_8bit(ds, pixels)
    raise UnsupportedImage(f"{samples} samples per pixel: only grayscale or RGB images")


def as_8bit_image(image: np.ndarray) -> np.ndarray:
    """Check an already-displayable image: uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise UnsupportedImage(f"expected an 8-bit image, got {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]  # alpha dropped, as PIL's RGBA to RGB does
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise UnsupportedImage(f"expected a 2-D grayscale or RGB image, got shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise UnsupportedImage("the image is empty")
    return array


def model_input(image: np.ndarray, contract: InputContract) -> np.ndarray:
    """An 8-bit image as the model's float32 input (no batch axis), per the card.

    Channels first (grayscale replicated to RGB or RGB to luminance, as PIL converts), then
    resize to the contract's size (no crop, no aspect ratio kept), then scaling, then layout.
    """
    array = as_8bit_image(image)
    picture = Image.fromarray(array)
    picture = picture.convert("RGB" if contract.channels == 3 else "L")
    size = (contract.width, contract.height)
    if picture.size != size:
        picture = picture.resize(size, _RESAMPLE[contract.resize])
    values = np.asarray(picture, dtype=np.float32).reshape(
        contract.height, contract.width, contract.channels
    )
    scaling = contract.scaling
    mean = np.asarray(scaling.mean, dtype=np.float32)
    std = np.asarray(scaling.std, dtype=np.float32)
    values = (values / np.float32(scaling.divisor) - mean) / std
    if contract.layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values, dtype=np.float32)


def dataset_input(ds: Dataset, contract: InputContract) -> np.ndarray:
    """A DICOM data set as model input, windowed as the card says."""
    image = display_image(ds, contract.dicom_window, invert_monochrome1=contract.invert_monochrome1)
    return model_input(image, contract)
