"""Rendered images (PS3.18 10.4.1.1.4, WADO-URI): pixels to 8-bit JPEG or PNG for display.

Modality LUT (rescale), then the VOI window (from the request, else from the image, else
the pixel range), MONOCHROME1 inverted so that bone is white, colour images converted to
RGB; optional viewport size; quality for JPEG.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut, convert_color_space

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import StoredInstance

MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_VIEWPORT = 8192


class CannotRender(Exception):
    """The pixel data cannot be decoded or shown (unsupported encoding, corrupt data)."""


@dataclass(frozen=True)
class RenderOptions:
    """What the client asked for; None means "as the image says"."""

    media_type: str = "image/jpeg"
    frame: int = 1
    window_center: float | None = None
    window_width: float | None = None
    rows: int | None = None
    columns: int | None = None
    quality: int = 90


def _frame_pixels(ds: Dataset, frame: int) -> np.ndarray:
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if not 1 <= frame <= count:
        raise NotFound(f"frame {frame} does not exist (the instance has {count})")
    array = ds.pixel_array
    return array[frame - 1] if count > 1 else array


def _to_8bit_grey(ds: Dataset, pixels: np.ndarray, options: RenderOptions) -> np.ndarray:
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if options.window_center is not None and options.window_width is not None:
        low = options.window_center - options.window_width / 2
        high = options.window_center + options.window_width / 2
    else:
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds).astype(np.float64)
        low, high = float(values.min()), float(values.max())
    scaled = np.clip((values - low) / max(high - low, 1e-9), 0.0, 1.0) * 255.0
    if ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
        scaled = 255.0 - scaled
    return scaled.astype(np.uint8)


def _image(ds: Dataset, options: RenderOptions) -> Image.Image:
    pixels = _frame_pixels(ds, options.frame)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1:
        return Image.fromarray(_to_8bit_grey(ds, pixels, options), mode="L")
    photometric = str(ds.get("PhotometricInterpretation", "RGB"))
    if photometric.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_compressed:
        pixels = convert_color_space(pixels, photometric, "RGB")
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def render(archive: Archive, stored: StoredInstance, options: RenderOptions) -> bytes:
    """The instance's frame as a JPEG or PNG image."""
    if options.media_type not in MEDIA_TYPES:
        raise InvalidQuery(f"cannot render as {options.media_type}")
    ds = dcmread(BytesIO(archive.read_instance(stored)))
    if "PixelData" not in ds:
        raise NotFound(f"instance {stored.sop_uid} has no pixel data")
    try:
        image = _image(ds, options)
    except (NotFound, InvalidQuery):
        raise
    except Exception as exc:  # pydicom/codec errors on unusual or corrupt pixel data
        raise CannotRender(f"cannot render {stored.sop_uid}: {type(exc).__name__}: {exc}") from exc
    if options.rows or options.columns:
        image.thumbnail(
            (
                min(options.columns or image.width, MAX_VIEWPORT),
                min(options.rows or image.height, MAX_VIEWPORT),
            )
        )
    out = BytesIO()
    if MEDIA_TYPES[options.media_type] == "JPEG":
        image.save(out, format="JPEG", quality=max(1, min(options.quality, 100)))
    else:
        image.save(out, format="PNG")
    return out.getvalue()
