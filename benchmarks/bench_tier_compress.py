"""Migration to a compressed cold tier: MB/s of DICOM moved and the compression ratio, per
codec, against the same migration to a plain cold tier.

    python benchmarks/bench_tier_compress.py [--mb 100] [--codecs jpeg-ls,jpeg2000]

In process (Archive, TieredBlobStore, StudyMover with the tier's lossless transform; SQLite
index), two folders on the same disk, 512x512 12-bit CT slices with realistic, compressible
pixels (tests/factories.make_ct_series: a body ellipse, a bone ring, a little noise) in
studies of 50. Each moved byte is read, compressed, checked bit-exact (every frame decoded
again), written with fdatasync, read back and hashed; the source is then deleted. MB/s counts
the original DICOM bytes moved per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from pacs.core.archive import Archive
from pacs.core.tiering import HOT, StudyMover, TierLedger, Transform
from pacs.core.tiering.compress import lossless_transform
from storage import FileSystemBlobStore, TieredBlobStore

MB = common.MB
PER_STUDY = 50


def migrate(folder: Path, mb: int, codec: str) -> dict[str, Any]:
    """Store ``mb`` MB of CT studies, move them all to the cold tier (compressed with
    ``codec``, or as they are for ''), and say how fast and how small."""
    blobs = TieredBlobStore(
        [(HOT, FileSystemBlobStore(folder / "hot")), ("cold", FileSystemBlobStore(folder / "cold"))]
    )
    archive = Archive.open(f"sqlite:///{folder / 'index.sqlite'}", blobs)
    try:
        studies = []
        total = 0
        while total < mb * MB:
            datasets = common.FACTORIES.make_ct_series(PER_STUDY, rows=512, columns=512)
            for ds in datasets:
                raw = common.FACTORIES.to_bytes(ds)
                archive.store(raw, "BENCH")
                total += len(raw)
            studies.append(str(datasets[0].StudyInstanceUID))
        transforms: dict[str, Transform] = {"cold": lossless_transform(codec)} if codec else {}
        mover = StudyMover(TierLedger(archive.index.database), blobs, transforms=transforms)
        started = time.monotonic()
        read = written = 0
        for study in studies:
            report = mover.move_study(study, "cold")
            assert report.complete, report.errors
            read += report.bytes_read
            written += report.bytes_written
        seconds = time.monotonic() - started
        saved = archive.storage_status()["tiers"][1]["saved_bytes"]
    finally:
        archive.close()
    return {
        "codec": codec or "(none)",
        "mb": round(read / MB, 1),
        "migration_mb_s": round(read / MB / seconds, 1),
        "ratio": round(read / written, 2),
        "saved_mb": round(saved / MB, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="MB of studies to migrate per codec")
    parser.add_argument("--codecs", default="jpeg-ls,jpeg2000", help="comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: /tmp)")
    args = parser.parse_args()
    results = []
    for codec in ["", *args.codecs.split(",")]:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-tiercomp-") as scratch:
            results.append(migrate(Path(scratch), args.mb, codec))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
