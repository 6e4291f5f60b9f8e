"""Lossless re-compression for colder tiers: bit-exact round trips, refusals, the checker."""

from __future__ import annotations

import contextlib
import csv
import subprocess
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from pacs.core.dicom_header import summarize
from pacs.core.lossless import CODECS, compress_part10, pixels_identical
from tests.conftest import REPO
from tests.factories import make_image, to_bytes

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom-samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/data/dicom-samples")

CODEC_NAMES = sorted(CODECS)


def phantom(shape: tuple[int, ...], low: int, high: int, seed: int = 0) -> np.ndarray[Any, Any]:
    """CT-like values: a smooth disc on a background, a little noise, within [low, high]."""
    rows, columns = shape[-2], shape[-1]
    y, x = np.mgrid[0:rows, 0:columns]
    disc = ((y - rows / 2) ** 2 + (x - columns / 2) ** 2) < (min(rows, columns) / 2.5) ** 2
    base = np.where(disc, low + (high - low) * 0.6, low + (high - low) * 0.05)
    noise = np.random.default_rng(seed).normal(0, (high - low) / 200, shape)
    return np.clip(np.broadcast_to(base, shape) + noise, low, high).round()


def image(
    values: np.ndarray[Any, Any],
    *,
    bits_stored: int,
    photometric: str = "MONOCHROME2",
    planar: int | None = None,
    transfer_syntax: str = str(ExplicitVRLittleEndian),
) -> Dataset:
    """An instance whose Pixel Data holds ``values`` as given (frames first, samples last)."""
    samples = 3 if photometric == "RGB" else 1
    frames = values.shape[0] if values.ndim == (4 if samples == 3 else 3) else 1
    rows, columns = values.shape[-3:-1] if samples == 3 else values.shape[-2:]
    ds = make_image(rows=rows, columns=columns, transfer_syntax=transfer_syntax)
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = values.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(values.dtype.kind == "i")
    ds.WindowCenter = 40
    ds.ReferencedImageSequence = [Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.4"
    if samples == 3:
        ds.PlanarConfiguration = planar or 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ordered = np.moveaxis(values, -1, -3) if planar == 1 else values
    ds.PixelData = np.ascontiguousarray(ordered).tobytes()
    return ds


def assert_round_trip(raw: bytes, codec: str) -> None:
    """compress_part10 accepts ``raw``; the result holds the same pixels and elements."""
    result = compress_part10(raw, codec=codec)
    assert result is not None
    syntax = str(JPEGLSLossless if codec == "jpeg-ls" else JPEG2000Lossless)
    assert result.transfer_syntax == syntax
    assert result.original_size == len(raw)
    assert result.compressed_size == len(result.data) < len(raw) * 0.9
    before, after = dcmread(BytesIO(raw)), dcmread(BytesIO(result.data))
    assert after.file_meta.TransferSyntaxUID == syntax
    assert after.SOPInstanceUID == before.SOPInstanceUID
    assert after.file_meta.MediaStorageSOPInstanceUID == before.file_meta.MediaStorageSOPInstanceUID
    assert after.PatientName == before.PatientName
    assert after.get("ReferencedImageSequence") == before.get("ReferencedImageSequence")
    original = before.pixel_array
    decoded = after.pixel_array
    assert decoded.dtype == original.dtype
    assert decoded.shape == original.shape
    assert np.array_equal(decoded, original)


@pytest.mark.parametrize("codec", CODEC_NAMES)
@pytest.mark.parametrize(
    ("dtype", "bits_stored", "low", "high"),
    [
        (np.uint8, 8, 0, 255),
        (np.uint16, 12, 0, 4095),
        (np.uint16, 16, 0, 65535),
        (np.int16, 16, -1024, 3071),  # CT in Hounsfield units, signed
        (np.int16, 12, -2048, 2047),  # signed 12 in 16: sign-extended high bits
        (np.int8, 8, -128, 127),
    ],
)
def test_monochrome_round_trip_is_bit_exact(
    codec: str, dtype: Any, bits_stored: int, low: int, high: int
) -> None:
    values = phantom((256, 256), low, high).astype(dtype)
    assert_round_trip(to_bytes(image(values, bits_stored=bits_stored)), codec)


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_implicit_vr_monochrome1_round_trip(codec: str) -> None:
    values = phantom((200, 160), 0, 1023).astype(np.uint16)
    ds = image(
        values,
        bits_stored=10,
        photometric="MONOCHROME1",
        transfer_syntax=str(ImplicitVRLittleEndian),
    )
    ds.SmallestImagePixelValue = 0  # an ambiguous VR (US or SS) in Implicit VR
    assert_round_trip(to_bytes(ds), codec)


@pytest.mark.parametrize("codec", CODEC_NAMES)
@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_round_trip(codec: str, planar: int) -> None:
    grey = phantom((2, 64, 96), 0, 255).astype(np.uint8)
    values = np.stack([grey, grey // 2, 255 - grey], axis=-1)  # (frames, rows, columns, 3)
    raw = to_bytes(image(values, bits_stored=8, photometric="RGB", planar=planar))
    assert_round_trip(raw, codec)
    after = dcmread(BytesIO(compress_part10(raw, codec=codec).data))  # type: ignore[union-attr]
    assert after.PlanarConfiguration == 0


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_multiframe_odd_sizes_round_trip(codec: str) -> None:
    values = phantom((7, 33, 65), -1000, 2000, seed=3).astype(np.int16)
    assert_round_trip(to_bytes(image(values, bits_stored=16)), codec)


def test_odd_length_8_bit_pixel_data_round_trip() -> None:
    values = phantom((3, 31, 33), 0, 255).astype(np.uint8)  # 3069 bytes: padded to even
    assert_round_trip(to_bytes(image(values, bits_stored=8)), "jpeg-ls")


def test_values_in_unused_high_bits_are_refused() -> None:
    """12 of 16 bits stored, but some words use bit 15: no codec keeps those, so no."""
    values = phantom((128, 128), 0, 4095).astype(np.uint16)
    values[10, 10:20] |= 0x8000
    raw = to_bytes(image(values, bits_stored=12))
    for codec in CODEC_NAMES:
        assert compress_part10(raw, codec=codec) is None


def test_signed_values_outside_bits_stored_are_refused() -> None:
    values = phantom((128, 128), -2048, 2047).astype(np.int16)
    values[0, 0] = 4000  # not a sign-extended 12-bit value
    assert compress_part10(to_bytes(image(values, bits_stored=12))) is None


def test_no_pixel_data_is_refused() -> None:
    ds = make_image()
    del ds.PixelData
    assert compress_part10(to_bytes(ds)) is None


def test_already_compressed_is_refused() -> None:
    values = phantom((64, 64), 0, 4095).astype(np.uint16)
    ds = image(values, bits_stored=12)
    ds.compress(RLELossless, generate_instance_uid=False)
    assert compress_part10(to_bytes(ds)) is None
    lossless = compress_part10(to_bytes(image(values, bits_stored=12)))
    assert lossless is not None
    assert compress_part10(lossless.data, codec="jpeg2000") is None


def test_float_pixel_data_is_refused() -> None:
    ds = make_image()
    del ds.PixelData
    ds.FloatPixelData = np.zeros((16, 16), np.float32).tobytes()
    ds.BitsAllocated = 32
    assert compress_part10(to_bytes(ds)) is None


def test_32_bit_and_ybr_are_refused() -> None:
    ds = image(phantom((32, 32), 0, 1000).astype(np.uint32), bits_stored=32)
    assert compress_part10(to_bytes(ds)) is None
    grey = phantom((32, 32), 0, 255).astype(np.uint8)
    ybr = image(np.stack([grey] * 3, axis=-1), bits_stored=8, photometric="RGB")
    ybr.PhotometricInterpretation = "YBR_FULL"
    assert compress_part10(to_bytes(ybr)) is None


def test_small_gain_is_refused() -> None:
    noise = np.random.default_rng(1).integers(0, 65536, (128, 128), dtype=np.uint16)
    raw = to_bytes(image(noise, bits_stored=16))
    assert compress_part10(raw) is None
    assert compress_part10(raw, min_gain=-1.0) is not None  # a threshold, not a failure


def test_truncated_and_garbage_input_returns_none() -> None:
    raw = to_bytes(image(phantom((64, 64), 0, 4095).astype(np.uint16), bits_stored=12))
    assert compress_part10(raw[: len(raw) - 100]) is None
    assert compress_part10(b"\0" * 128 + b"DICM" + b"\xff" * 50) is None
    assert compress_part10(b"") is None


def test_unknown_codec_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        compress_part10(b"", codec="zip")


def test_checker_refuses_different_arrays() -> None:
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert pixels_identical(a, a.copy())
    b = a.copy()
    b[2, 3] += 1
    assert not pixels_identical(a, b)
    assert not pixels_identical(a, a.astype(np.int16))  # same values, other dtype
    assert not pixels_identical(a, a.reshape(4, 3))  # same values, other shape
    assert not pixels_identical(a, a | 0x1000)  # differs in high bits only


def _real_samples() -> list[Path]:
    manifest = SAMPLES / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        SAMPLES / row["path"] for row in rows if row["modality"] in {"CT", "CR", "MR", "DX"}
    ] + [SAMPLES / row["path"] for row in rows if row["modality"] not in {"CT", "CR", "MR", "DX"}]


@pytest.mark.shared_data
@pytest.mark.skipif(not _real_samples(), reason="../shared/data/dicom-samples is absent")
def test_real_samples_round_trip_bit_exact_or_are_kept() -> None:
    """Every sample (hostile ones included) either round-trips bit-exact or gives None;
    enough of the real CT compresses to make the tier worth having."""
    accepted: dict[str, int] = {}
    ct_before = ct_after = 0
    for path in _real_samples():
        raw = path.read_bytes()
        with contextlib.suppress(Exception):  # what the archive stores: File Meta added
            raw = summarize(raw)[1]
        result = compress_part10(raw)
        if result is None:
            continue
        before, after = dcmread(BytesIO(raw)), dcmread(BytesIO(result.data))
        assert after.SOPInstanceUID == before.SOPInstanceUID, path
        assert pixels_identical(before.pixel_array, after.pixel_array), path
        modality = str(before.get("Modality", ""))
        accepted[modality] = accepted.get(modality, 0) + 1
        if modality == "CT":
            ct_before += result.original_size
            ct_after += result.compressed_size
    assert accepted.get("CT", 0) >= 5 and accepted.get("CR", 0) >= 1, accepted
    assert ct_before / ct_after >= 2.0


def test_jpeg2000_from_several_threads_does_not_crash_the_process() -> None:
    """The tier mover compresses in 4 threads; pylibjpeg-openjpeg's encoder crashes the
    process (SIGSEGV) when two threads encode at once unless compress_part10 serialises it.
    Run in a child process so a crash fails this test instead of killing pytest."""
    script = (
        "import threading\n"
        "from pacs.core.lossless import compress_part10\n"
        "from tests.factories import make_ct_series, to_bytes\n"
        "raws = [to_bytes(ds) for ds in make_ct_series(4, 256, 256)]\n"
        "done = []\n"
        "def work(raw):\n"
        "    for _ in range(15):\n"
        "        done.append(compress_part10(raw, codec='jpeg2000') is not None)\n"
        "threads = [threading.Thread(target=work, args=(raw,)) for raw in raws]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(sum(done))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, f"rc={result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.strip() == "60"
