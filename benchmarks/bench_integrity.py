"""Integrity benchmarks: what the synchronous replica and the background scrub cost ingest,
and how fast verify, backup and restore run.

Ingest is measured in-process (``Archive.store``, one instance at a time, as one DICOM
association stores), in interleaved blocks of CT slices: A, B, B, A, A, B... so that both
sides see the same machine load; each side's figure is the median of its blocks.

    python benchmarks/bench_integrity.py --quick      # 8 blocks of 50 slices a side
    python benchmarks/bench_integrity.py --blocks 24  # more blocks on a noisy machine
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from common import RESULTS, ct_slice, ensure_set, machine_info
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs.core.archive import Archive
from pacs.core.backup import backup, restore
from pacs.core.index.db import Database
from pacs.core.integrity import Verifier
from pacs.core.scrub import Scrubber
from storage import FileSystemBlobStore, RateLimiter, ReplicatedBlobStore

BLOCK = 50


def fresh_copies(raw: list[bytes]) -> list[bytes]:
    """The same slices under new SOP Instance UIDs (a block is stored once per side)."""
    out = []
    for data in raw:
        ds = dcmread(io.BytesIO(data))
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def store_rate(archive: Archive, batch: list[bytes]) -> float:
    started = time.perf_counter()
    for data in batch:
        archive.store(data, "BENCH")
    return len(batch) / (time.perf_counter() - started)


def interleave(
    blocks: int, raw: list[bytes], sides: dict[str, Callable[[list[bytes]], float]]
) -> dict[str, Any]:
    """Alternate the sides block by block; median instances/s of each."""
    names = list(sides)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        for name in names if block % 2 == 0 else reversed(names):
            rates[name].append(sides[name](fresh_copies(raw)))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "median_inst_per_s": {k: round(v, 1) for k, v in medians.items()},
        "change_pct": round(100 * (medians[names[1]] / medians[names[0]] - 1), 1),
        "blocks": {k: [round(v, 1) for v in values] for k, values in rates.items()},
    }


def replica_cost(work: Path, blocks: int, raw: list[bytes]) -> dict[str, Any]:
    hot = Archive.open(f"sqlite:///{work / 'a' / 'index.sqlite'}", FileSystemBlobStore(work / "a"))
    mirrored = Archive.open(
        f"sqlite:///{work / 'b' / 'index.sqlite'}",
        ReplicatedBlobStore(FileSystemBlobStore(work / "b"), FileSystemBlobStore(work / "nas")),
    )
    try:
        return interleave(
            blocks,
            raw,
            {
                "hot": lambda batch: store_rate(hot, batch),
                "hot+replica": lambda batch: store_rate(mirrored, batch),
            },
        )
    finally:
        hot.close()
        mirrored.close()


def scrub_cost(work: Path, blocks: int, raw: list[bytes], rate_mb_s: float) -> dict[str, Any]:
    archive = Archive.open(f"sqlite:///{work / 'index.sqlite'}", FileSystemBlobStore(work / "s"))
    for _ in range(4):  # something to scrub from the start
        for data in fresh_copies(raw):
            archive.store(data, "PRE")
    limiter = RateLimiter(rate_mb_s * 1e6)  # one budget across blocks: no burst per block

    def with_scrub(batch: list[bytes]) -> float:
        running = Scrubber(
            archive.index.database, archive.blobs, rate_bytes=rate_mb_s * 1e6, pass_interval=0
        )
        running.limiter = limiter
        running.start()
        try:
            return store_rate(archive, batch)
        finally:
            running.stop()

    try:
        result = interleave(
            blocks,
            raw,
            {"no scrub": lambda batch: store_rate(archive, batch), "scrub": with_scrub},
        )
        result["scrub_rate_mb_s"] = rate_mb_s
        return result
    finally:
        archive.close()


def operations(work: Path, raw_files: list[Path]) -> dict[str, Any]:
    """verify, backup (full then incremental) and restore of a site (warm page cache)."""
    site = work / "site"
    archive = Archive.open(f"sqlite:///{site / 'index.sqlite'}", FileSystemBlobStore(site / "b"))
    for path in raw_files:
        archive.store(path.read_bytes(), "BENCH")
    size = archive.statistics()["total_size"]
    archive.close()
    database = Database(f"sqlite:///{site / 'index.sqlite'}")
    blobs = FileSystemBlobStore(site / "b")
    timings: dict[str, Any] = {"instances": len(raw_files), "mb": round(size / 1e6, 1)}

    def timed(name: str, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        action()
        seconds = time.perf_counter() - started
        timings[name] = {"seconds": round(seconds, 3), "mb_per_s": round(size / 1e6 / seconds, 1)}

    timed("verify", lambda: Verifier(database, blobs).run())
    timed("backup_full", lambda: backup(database, blobs, work / "backup"))
    timed("backup_incremental", lambda: backup(database, blobs, work / "backup"))
    database.close()
    target = Database(f"sqlite:///{work / 'restored' / 'index.sqlite'}")
    timed(
        "restore",
        lambda: restore(target, FileSystemBlobStore(work / "restored" / "b"), work / "backup"),
    )
    target.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 blocks a side")
    parser.add_argument("--blocks", type=int, default=0, help="blocks a side (default 16)")
    parser.add_argument("--scrub-rate", type=float, default=10.0, help="MB/s (default 10)")
    parser.add_argument("--json", type=Path, default=None, help="result file")
    args = parser.parse_args(argv)
    blocks = args.blocks or (8 if args.quick else 16)
    data = ensure_set("ct", 200, ct_slice, {"rows": 512})
    files = [data.folder / name for name in data.names]
    raw = [path.read_bytes() for path in files[:BLOCK]]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-integrity-") as tmp:
        work = Path(tmp)
        print("replica cost ...", flush=True)
        results["replica"] = replica_cost(work / "replica", blocks, raw)
        print("scrub cost ...", flush=True)
        results["scrub"] = scrub_cost(work / "scrub", blocks, raw, args.scrub_rate)
        print("verify, backup, restore ...", flush=True)
        results["operations"] = operations(work / "ops", files)
        shutil.rmtree(work, ignore_errors=True)
    for name in ("replica", "scrub"):
        entry = results[name]
        print(f"{name}: {entry['median_inst_per_s']} inst/s, change {entry['change_pct']} %")
    print("operations:", json.dumps(results["operations"]))
    out = args.json or RESULTS / f"integrity-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine_info(""), "results": results}, indent=1))
    print(f"Results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
