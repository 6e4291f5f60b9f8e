"""Lossless compression for colder tiers: ratio and speed per codec (pacs.core.lossless).

    python benchmarks/bench_lossless.py            # synthetic CT + real samples + memory
    python benchmarks/bench_lossless.py --quick    # fewer synthetic slices, no memory runs

Data sets: (a) synthetic CT slices as the other benchmarks make them (common.ct_slice:
512x512, 12 bits of uniform noise: the worst case) and a phantom CT (a smooth body with
noise, closer to real CT); (b) the real CT and CR samples in ../shared/data (skipped when
absent). "compress" is compress_part10 as the tier would call it (encode + the bit-exact
check of a fresh read); "decompress" is a fresh read and decode of every frame. MB/s are
of the original file size. Peak memory runs (a 2500x2048 CR, a 500-frame multiframe) use a
child process each and report its maximum resident size.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

import common
import numpy as np
from pydicom import dcmread

from pacs.core.dicom_header import summarize
from pacs.core.lossless import CODECS, compress_part10

SAMPLES = common.REPO.parent / "shared" / "data" / "dicom-samples"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/data/dicom-samples")


def synthetic_noise_ct(count: int) -> list[bytes]:
    uids = {"study": common.FACTORIES.new_uid(), "series": common.FACTORIES.new_uid()}
    uids["frame"] = common.FACTORIES.new_uid()
    return [common.FACTORIES.to_bytes(common.ct_slice(i, uids)) for i in range(count)]


def phantom_pixels(frames: int, rows: int, columns: int, seed: int) -> np.ndarray:
    """Signed CT-like values: air, a body at soft-tissue values with noise, bone ring."""
    y, x = np.mgrid[0:rows, 0:columns]
    r = np.hypot(y - rows / 2, x - columns / 2) / (min(rows, columns) / 2)
    body = np.where(r < 0.8, 40.0, -1000.0) + np.where((r > 0.6) & (r < 0.68), 900.0, 0.0)
    noise = np.random.default_rng(seed).normal(0, 12, (frames, rows, columns))
    return np.clip(body + noise, -1024, 3071).round().astype(np.int16)


def phantom_ct(count: int) -> list[bytes]:
    out = []
    for index in range(count):
        ds = common.FACTORIES.make_image(rows=512, columns=512, instance_number=index + 1)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.PixelData = phantom_pixels(1, 512, 512, index)[0].tobytes()
        out.append(common.FACTORIES.to_bytes(ds))
    return out


def real(modalities: set[str]) -> list[bytes]:
    manifest = SAMPLES / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["modality"] in modalities]
    return [as_stored((SAMPLES / row["path"]).read_bytes()) for row in rows]


def as_stored(raw: bytes) -> bytes:
    """The bytes the archive would store (a File Meta header added to a bare data set)."""
    try:
        return summarize(raw)[1]
    except Exception:  # refused at ingest: offered as it is (compress_part10 must cope)
        return raw


def measure(files: list[bytes], codec: str) -> dict[str, float]:
    """Accepted count, ratio over accepted files, compress and decompress MB/s."""
    accepted: list[tuple[bytes, bytes]] = []
    started = time.perf_counter()
    for raw in files:
        result = compress_part10(raw, codec=codec)
        if result is not None:
            accepted.append((raw, result.data))
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    for _, data in accepted:
        dcmread(BytesIO(data)).pixel_array  # noqa: B018 - the decode is what is timed
    decompress_s = time.perf_counter() - started
    before = sum(len(raw) for raw, _ in accepted)
    after = sum(len(data) for _, data in accepted)
    total = sum(len(raw) for raw in files)
    return {
        "files": len(files),
        "accepted": len(accepted),
        "ratio": before / after if after else 0.0,
        "compress_mb_s": total / compress_s / 1e6 if compress_s else 0.0,
        "decompress_mb_s": before / decompress_s / 1e6 if decompress_s else 0.0,
    }


_CHILD = """
import re, sys
from pacs.core.lossless import compress_part10
raw = open(sys.argv[1], "rb").read()
result = compress_part10(raw, codec=sys.argv[2])
status = open("/proc/self/status").read()  # VmHWM: this process's peak (ru_maxrss is inherited)
peak = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024
print(f"{len(raw) / 1e6:.0f} {peak:.0f} {result.ratio if result else 0:.2f}")
"""


def peak_memory(codec: str) -> Iterable[tuple[str, str]]:
    """(case, 'file MB / peak RSS MB / ratio') for the two large cases, in child processes."""
    work = common.REPO / "benchmarks" / ".work" / "lossless"
    work.mkdir(parents=True, exist_ok=True)
    cr = work / "cr_2500x2048.dcm"
    if not cr.exists():
        ds = common.radiograph(0, {})
        y, x = np.mgrid[0:2500, 0:2048]
        smooth = (1500 + 800 * np.sin(x / 300.0) * np.cos(y / 400.0)).astype(np.uint16)
        ds.PixelData = (
            (smooth + np.random.default_rng(0).integers(0, 30, smooth.shape))
            .astype(np.uint16)
            .tobytes()
        )
        cr.write_bytes(common.FACTORIES.to_bytes(ds))
    multi = work / "ct_500_frames.dcm"
    if not multi.exists():
        ds = common.FACTORIES.make_image(rows=512, columns=512)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.NumberOfFrames = 500
        ds.PixelData = b"".join(phantom_pixels(1, 512, 512, i).tobytes() for i in range(500))
        multi.write_bytes(common.FACTORIES.to_bytes(ds))
    for name, path in (("CR 2500x2048", cr), ("CT 500 frames 512x512", multi)):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), codec],
            capture_output=True,
            text=True,
            check=True,
        )
        size, peak, ratio = child.stdout.split()
        yield name, f"{size} MB file, peak RSS {peak} MB, ratio {ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    slices = 20 if args.quick else 100
    sets = {
        f"synthetic CT noise ({slices})": synthetic_noise_ct(slices),
        f"synthetic CT phantom ({slices})": phantom_ct(slices),
        "real CT (shared/data)": real({"CT"}),
        "real CR (shared/data)": real({"CR"}),
        "real MR+DX (shared/data)": real({"MR", "DX"}),
    }
    print(
        f"{'data set':34} {'codec':9} {'files':>5} {'kept':>5} {'ratio':>6} {'comp MB/s':>9} "
        f"{'dec MB/s':>9}"
    )
    for name, files in sets.items():
        if not files:
            print(f"{name:34} (absent: skipped)")
            continue
        for codec in sorted(CODECS):
            m = measure(files, codec)
            print(
                f"{name:34} {codec:9} {m['files']:5.0f} {m['accepted']:5.0f} {m['ratio']:6.2f} "
                f"{m['compress_mb_s']:9.1f} {m['decompress_mb_s']:9.1f}",
                flush=True,
            )
    if not args.quick:
        for codec in sorted(CODECS):
            for case, text in peak_memory(codec):
                print(f"memory {codec:9} {case:24} {text}", flush=True)


if __name__ == "__main__":
    main()
