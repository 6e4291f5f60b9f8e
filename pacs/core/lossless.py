"""Lossless re-compression of stored Part 10 files for colder storage tiers.

:func:`compress_part10` turns a stored file with native (uncompressed) pixel data into the
same instance with its Pixel Data encapsulated in JPEG-LS lossless (default) or JPEG 2000
lossless; the SOP Instance UID and every other element stay as they were. Before a result is
returned, the produced bytes are read again from scratch and checked: every frame decodes to
exactly the stored values (shape, dtype and the full stored words, unused high bits
included) and the data set minus Pixel Data is unchanged. Anything it cannot do or cannot
prove gives ``None``: keep the original.

One frame is decoded at a time for the check, so a 500-frame series costs the original, the
compressed bytes and one frame, not two decoded volumes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
)

log = logging.getLogger("pacs.core.lossless")

#: codec name -> (transfer syntax, pydicom encoding plugin)
CODECS: dict[str, tuple[UID, str]] = {
    "jpeg-ls": (JPEGLSLossless, "pyjpegls"),
    "jpeg2000": (JPEG2000Lossless, "pylibjpeg"),
}
# pylibjpeg-openjpeg's encoder crashes the process (SIGSEGV) when two threads encode at once
# (seen with the tier mover's copy threads): one JPEG 2000 encode at a time. Its decoder and
# CharLS (JPEG-LS) run concurrently without trouble.
_ENCODE_LOCKS: dict[str, threading.Lock] = {"jpeg2000": threading.Lock()}
LOSSLESS_SYNTAXES = frozenset(str(uid) for uid, _ in CODECS.values())
_NATIVE_SOURCES = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})
_PHOTOMETRIC = {1: {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"}, 3: {"RGB"}}
_PIXEL_DATA = 0x7FE00010
_PLANAR_CONFIGURATION = 0x00280006
DEFAULT_MIN_GAIN = 0.10


@dataclass(frozen=True)
class LosslessResult:
    """A checked, losslessly compressed Part 10 file and what it saves."""

    data: bytes
    transfer_syntax: str
    original_size: int
    compressed_size: int

    @property
    def saved(self) -> int:
        """Bytes saved by storing ``data`` instead of the original."""
        return self.original_size - self.compressed_size

    @property
    def ratio(self) -> float:
        """Original size / compressed size (whole files)."""
        return self.original_size / self.compressed_size


class _Refused(Exception):
    """This file is kept as it is; the message says why."""


def compress_part10(
    raw: bytes, *, codec: str = "jpeg-ls", min_gain: float = DEFAULT_MIN_GAIN
) -> LosslessResult | None:
    """``raw`` with its pixel data losslessly compressed and checked bit-exact, or None
    when it is better kept as it is (no native pixel data, unsupported image, a gain under
    ``min_gain``, or any doubt). Never raises for bad input; raises ValueError for an
    unknown ``codec``."""
    if codec not in CODECS:
        raise ValueError(f"unknown lossless codec {codec!r}; one of {sorted(CODECS)}")
    try:
        return _compress(raw, codec, min_gain)
    except _Refused as reason:
        log.debug("lossless %s: kept as is: %s", codec, reason)
    except Exception as exc:  # codec or parser errors on unusual or hostile files
        log.warning("lossless %s: kept as is after %s: %s", codec, type(exc).__name__, exc)
    return None


def _compress(raw: bytes, codec: str, min_gain: float) -> LosslessResult | None:
    syntax, plugin = CODECS[codec]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings on odd files: we check instead
        ds = dcmread(BytesIO(raw))
        layout = PixelLayout.of(ds)
        source = ds.PixelData
        pixels = None
        if layout.planar == 1:  # encoded from interleaved samples; PS3.5 8.2 wants 0 then
            pixels = layout.interleaved(source)
            ds.PlanarConfiguration = 0
        with _ENCODE_LOCKS.get(codec, contextlib.nullcontext()):
            ds.compress(syntax, pixels, encoding_plugin=plugin, generate_instance_uid=False)
        del pixels
        out = BytesIO()
        ds.save_as(out, enforce_file_format=False)  # File Meta kept as read (a DICM file)
        del ds
        data = out.getvalue()
    if len(data) > len(raw) * (1.0 - min_gain):
        raise _Refused(f"gain too small ({len(raw)} -> {len(data)} bytes)")
    problem = check_part10(raw, data, layout, source)
    if problem:
        log.warning("lossless %s: check failed, kept as is: %s", codec, problem)
        return None
    return LosslessResult(data, str(syntax), len(raw), len(data))


@dataclass(frozen=True)
class PixelLayout:
    """How native pixel data is laid out: enough to cut the stored frames as arrays."""

    rows: int
    columns: int
    samples: int
    planar: int
    frames: int
    dtype: np.dtype[Any]

    @classmethod
    def of(cls, ds: Dataset) -> PixelLayout:
        """The layout of ``ds``, or _Refused when it is not something we compress."""
        syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        if syntax not in _NATIVE_SOURCES:
            raise _Refused(f"transfer syntax {syntax or '(none)'} is not native Little Endian")
        if "PixelData" not in ds:
            raise _Refused("no Pixel Data")
        bits_allocated = int(ds.BitsAllocated)
        bits_stored = int(ds.BitsStored)
        samples = int(ds.SamplesPerPixel)
        photometric = str(ds.PhotometricInterpretation).strip()
        if bits_allocated not in (8, 16) or not 2 <= bits_stored <= bits_allocated:
            raise _Refused(f"bits allocated/stored {bits_allocated}/{bits_stored}")
        if photometric not in _PHOTOMETRIC.get(samples, set()):
            raise _Refused(f"{samples} sample(s) per pixel, {photometric}")
        representation = int(ds.PixelRepresentation)
        if representation not in (0, 1):
            raise _Refused(f"pixel representation {representation}")
        layout = cls(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            samples=samples,
            planar=int(ds.get("PlanarConfiguration", 0) or 0) if samples > 1 else 0,
            frames=int(ds.get("NumberOfFrames", 1) or 1),
            dtype=np.dtype(f"<{'iu'[representation == 0]}{bits_allocated // 8}"),
        )
        if min(layout.rows, layout.columns, layout.frames) < 1 or layout.planar not in (0, 1):
            raise _Refused("empty image or bad planar configuration")
        if len(ds.PixelData) < layout.frames * layout.frame_bytes:
            raise _Refused("Pixel Data shorter than its attributes say")
        return layout

    @property
    def frame_bytes(self) -> int:
        """Bytes per stored frame."""
        return self.rows * self.columns * self.samples * self.dtype.itemsize

    def interleaved(self, pixel_data: bytes) -> np.ndarray[Any, Any]:
        """All frames with samples last (colour images only, which are small enough)."""
        frames = [self.frame(pixel_data, index) for index in range(self.frames)]
        return frames[0].copy() if self.frames == 1 else np.stack(frames)

    def frame(self, pixel_data: bytes, index: int) -> np.ndarray[Any, Any]:
        """Stored frame ``index`` as an array shaped like pydicom's decoded frames."""
        start = index * self.frame_bytes
        flat = np.frombuffer(pixel_data, self.dtype, self.frame_bytes // self.dtype.itemsize, start)
        if self.samples == 1:
            return flat.reshape(self.rows, self.columns)
        if self.planar == 1:
            return np.moveaxis(flat.reshape(self.samples, self.rows, self.columns), 0, -1)
        return flat.reshape(self.rows, self.columns, self.samples)


def pixels_identical(original: np.ndarray[Any, Any], decoded: np.ndarray[Any, Any]) -> bool:
    """The bit-exact test: same shape, same dtype, same values."""
    return (
        original.shape == decoded.shape
        and original.dtype == decoded.dtype
        and bool(np.array_equal(original, decoded))
    )


def check_part10(raw: bytes, data: bytes, layout: PixelLayout, source: bytes) -> str:
    """Why ``data`` is not a faithful copy of ``raw`` ('' when it is): a fresh read of
    ``data`` must decode, frame by frame, to the stored frames of ``source`` and hold the
    same elements as ``raw`` apart from Pixel Data and the transfer syntax."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        produced = dcmread(BytesIO(data))
        decoder = get_decoder(produced.file_meta.TransferSyntaxUID)
        count = 0
        for count, (frame, _) in enumerate(decoder.iter_array(produced, raw=True), 1):
            if count > layout.frames:
                return f"more than {layout.frames} frame(s) decoded"
            if not pixels_identical(layout.frame(source, count - 1), frame):
                return f"frame {count} differs ({frame.dtype}{frame.shape})"
        if count != layout.frames:
            return f"{count} frame(s) decoded, {layout.frames} stored"
        original = dcmread(BytesIO(raw), defer_size=1 << 20)
        return _elements_differ(original, produced)


def _elements_differ(original: Dataset, produced: Dataset) -> str:
    meta_keys = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
    for key in meta_keys:
        if original.file_meta.get(key) != produced.file_meta.get(key):
            return f"file meta {key} changed"
    ignored = {_PIXEL_DATA}
    if original.get("PlanarConfiguration") == 1 and produced.get("PlanarConfiguration") == 0:
        ignored.add(_PLANAR_CONFIGURATION)  # set to 0 on purpose (see _compress)
    # Group lengths (gggg,0000, retired) are dropped by the writer: not data.
    before = {tag for tag in tuple(original.keys()) if tag not in ignored and tag & 0xFFFF}
    after = {tag for tag in tuple(produced.keys()) if tag not in ignored and tag & 0xFFFF}
    if before != after:
        return f"elements added or removed: {sorted(before ^ after)[:5]}"
    for tag in sorted(before):
        if original[tag] != produced[tag]:
            return f"element {tag} changed"
    return ""
