"""Frames: raw bytes cut from the pixel data, decoded frames as 16-bit PNG, 8-bit previews.

A minimal renderer of its own (min-max or the file's VOI window, MONOCHROME1 inverted): the
DICOMweb door's renderer is not importable from here (doors do not import each other).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array

from orthanc_compat.errors import INCOMPATIBLE_IMAGE_FORMAT, INEXISTENT_ITEM, OrthancError


def frame_count(ds: Dataset) -> int:
    """Number of frames (1 when the attribute is absent)."""
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _check_frame(ds: Dataset, frame: int) -> None:
    if "PixelData" not in ds:
        raise OrthancError(400, INCOMPATIBLE_IMAGE_FORMAT, "the instance has no pixel data")
    if not 0 <= frame < frame_count(ds):
        raise OrthancError(404, INEXISTENT_ITEM, f"no frame {frame}")


def raw_frame(ds: Dataset) -> bytes:
    """The bytes of frame 0 as stored (see :func:`raw_frame_at`)."""
    return raw_frame_at(ds, 0)


def raw_frame_at(ds: Dataset, frame: int) -> bytes:
    """One frame's bytes as stored: a slice of native pixel data, or the compressed frame."""
    _check_frame(ds, frame)
    data = ds.PixelData
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return bytes(get_frame(data, frame, number_of_frames=frame_count(ds)))
    bits = int(ds.get("BitsAllocated", 8))
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
    return bytes(data[frame * size : (frame + 1) * size])


def decoded_frame(ds: Dataset, frame: int) -> np.ndarray:
    """One frame decoded to numbers (stored values, before any LUT)."""
    _check_frame(ds, frame)
    try:
        return np.asarray(pixel_array(ds, index=frame))
    except Exception as exc:  # no decoder for this transfer syntax, or corrupt data
        raise OrthancError(415, INCOMPATIBLE_IMAGE_FORMAT, f"cannot decode: {exc}") from None


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _encode(image: Image.Image, mime: str) -> bytes:
    if mime == "image/jpeg":
        out = io.BytesIO()
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
            out, format="JPEG", quality=90
        )
        return out.getvalue()
    return _png(image)


def uint8_png(ds: Dataset, frame: int) -> bytes:
    """``image-uint8``: the stored values clipped to 0-255 (not rescaled), as an 8-bit PNG."""
    pixels = decoded_frame(ds, frame)
    if pixels.ndim != 2:
        raise OrthancError(415, INCOMPATIBLE_IMAGE_FORMAT, "not a grayscale image")
    return _png(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L"))


def uint16_png(ds: Dataset, frame: int, signed: bool = False) -> bytes:
    """``image-uint16`` / ``image-int16``: the stored values, clipped, as a 16-bit PNG."""
    pixels = decoded_frame(ds, frame)
    if pixels.ndim != 2:
        raise OrthancError(415, INCOMPATIBLE_IMAGE_FORMAT, "not a grayscale image")
    low, high = (-32768, 32767) if signed else (0, 65535)
    clipped = np.clip(pixels.astype(np.int64), low, high)
    if signed:
        clipped = clipped + 32768  # PNG has no signed samples: shifted, as Orthanc does
    return _png(Image.fromarray(clipped.astype(np.uint16)))


def _window(ds: Dataset, values: np.ndarray, use_voi: bool) -> tuple[float, float]:
    if use_voi:
        try:
            center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
            if center is not None and width is not None:
                center = float(center[0] if isinstance(center, list | tuple) else center)
                width = float(width[0] if isinstance(width, list | tuple) else width)
                if width > 0:
                    return center - width / 2, center + width / 2
        except (TypeError, ValueError, IndexError):
            pass
    return float(values.min()), float(values.max())


def eight_bit(ds: Dataset, frame: int, *, use_voi: bool, mime: str = "image/png") -> bytes:
    """``preview`` (min-max) and ``rendered`` (the file's window): an 8-bit image."""
    pixels = decoded_frame(ds, frame)
    if pixels.ndim == 3:  # colour: already 8 bits a sample in the common cases
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
        return _encode(image, mime)
    values = pixels.astype(np.float64)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0))
    values = values * slope + intercept
    low, high = _window(ds, values, use_voi)
    scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 255 - out
    return _encode(Image.fromarray(out, mode="L"), mime)
