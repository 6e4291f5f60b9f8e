"""Storage tiers: migration and recall throughput against the disk's own sequential
bandwidth, and ingest with and without a migration running.

    python benchmarks/bench_tiering.py [--mb 300] [--rounds 3] [--ingest-count 1500]
                                       [--yield-to-ingest 4]

In process (Archive, TieredBlobStore, StudyMover, TieringService; SQLite index), two folders
on the same disk as the hot and cold tiers, CT slices of 0.5 MB in studies of 100:

1. the disk: ``dd if=/dev/zero bs=1M count=N conv=fdatasync`` (sequential write + fdatasync),
   and the same bytes written as 0.5 MB files each made durable before the next (what any
   copy that keeps every file safe must do);
2. migration hot -> cold of every study, then recall cold -> hot (MB/s of DICOM moved: each
   byte copied, flushed to the device, read back and hashed, the source deleted);
3. ingest (4 threads calling Archive.store) alone, then while the tiering service moves
   studies back and forth (yielding to ingest as configured), ``--rounds`` times
   interleaved; the change per pair and its median are reported (this machine is noisy).

The source reads of 2. mostly come from the page cache (the data was just written), as do
the read-backs; the ratio is against write bandwidth, which is what bounds a move.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import common
from pydicom import dcmread

from pacs.core.archive import Archive
from pacs.core.tiering import HOT, StudyMover, TierLedger, TierPolicy, TierReads
from pacs.core.tiering.service import TieringConfig, TieringService
from storage import FileSystemBlobStore, TieredBlobStore

MB = common.MB
PER_STUDY = 100


def disk_bandwidth(folder: Path, mb: int) -> float:
    """MB/s of ``dd`` writing ``mb`` MB with one fdatasync at the end."""
    target = folder / "dd.bin"
    result = subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mb}", "conv=fdatasync"],
        capture_output=True,
        text=True,
        check=True,
    )
    target.unlink()
    match = re.search(r"(\d+(?:\.\d+)?) s,", result.stderr)
    assert match, result.stderr
    return mb * 1024 * 1024 / float(match.group(1)) / MB


def slices(count: int, study: int) -> list[bytes]:
    """``count`` CT slices (0.5 MB) of one new study as Part 10 bytes."""
    new_uid = common.FACTORIES.new_uid
    uids = {"study": new_uid(), "series": new_uid(), "frame": new_uid()}
    return [
        common.FACTORIES.to_bytes(common.ct_slice(n, uids, patient=f"TIER{study}"))
        for n in range(count)
    ]


def ingest(archive: Archive, files: list[bytes], threads: int = 4) -> float:
    """Instances per second stored by ``threads`` threads sharing ``files`` (all new)."""
    queue = list(files)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                raw = queue.pop()
            archive.store(raw, "BENCH")

    started = time.monotonic()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return len(files) / (time.monotonic() - started)


def ingest_during_moves(
    archive: Archive,
    ledger: TierLedger,
    service: TieringService,
    studies: list[str],
    files: list[bytes],
) -> float:
    """Instances per second stored while the service moves ``studies`` back and forth."""
    mover = service.mover
    mover.stop.clear()
    moving = threading.Event()

    def shuttle() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # as the service's
        target = "cold"
        while not moving.is_set():
            for study in studies:
                ledger.request(study, target, "manual")
            while not moving.is_set() and service.run_pending(limit=1):
                pass
            target = HOT if target == "cold" else "cold"

    mover_thread = threading.Thread(target=shuttle)
    mover_thread.start()
    time.sleep(1.0)
    rate = ingest(archive, files)
    moving.set()
    mover.stop.set()
    mover_thread.join()
    return rate


def small_files_bandwidth(folder: Path, mb: int, file_mb: float = 0.5) -> float:
    """MB/s of writing ``mb`` MB as files of ``file_mb`` MB, each made durable (fdatasync)
    before the next, then the folder: what any copy that keeps every file safe must do."""
    target = folder / "small-files"
    target.mkdir()
    block = os.urandom(int(file_mb * MB))
    count = max(1, int(mb / file_mb))
    started = time.monotonic()
    for number in range(count):
        fd = os.open(target / f"{number:06d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, block)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    fd = os.open(target, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    seconds = time.monotonic() - started
    for path in target.iterdir():
        path.unlink()
    target.rmdir()
    return count * len(block) / MB / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="MB of studies to migrate")
    parser.add_argument(
        "--ingest-count", type=int, default=1500, help="CT slices stored per ingest run"
    )
    parser.add_argument("--yield-to-ingest", type=float, default=TieringConfig.yield_to_ingest)
    parser.add_argument(
        "--rounds", type=int, default=3, help="ingest alone / during a migration pairs"
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: /tmp)")
    args = parser.parse_args()
    # each during-phase ends by stopping a move mid-study: expected, not worth a log line
    logging.getLogger("pacs.core.tiering.service").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-tiering-") as scratch:
        folder = Path(scratch)
        results: dict[str, Any] = {
            "dd_write_mb_s": round(disk_bandwidth(folder, args.mb), 1),
            "small_files_fdatasync_write_mb_s": round(small_files_bandwidth(folder, args.mb), 1),
        }
        blobs = TieredBlobStore(
            [
                (HOT, FileSystemBlobStore(folder / "hot")),
                ("cold", FileSystemBlobStore(folder / "cold")),
            ]
        )
        archive = Archive.open(f"sqlite:///{folder / 'index.sqlite'}", blobs)
        ledger = TierLedger(archive.index.database)
        archive.tiers = TierReads(blobs, ledger)
        studies: list[str] = []
        total = 0
        number = 0
        while total < args.mb * MB:
            files = slices(PER_STUDY, number)
            for raw in files:
                archive.store(raw, "BENCH")
                total += len(raw)
            studies.append(_study_of(files[0]))
            number += 1
        results["studies"] = len(studies)
        results["mb"] = round(total / MB, 1)
        mover = StudyMover(ledger, blobs)
        for target, name in (("cold", "migration"), (HOT, "recall")):
            started = time.monotonic()
            moved = sum(mover.move_study(study, target).bytes_written for study in studies)
            seconds = time.monotonic() - started
            results[f"{name}_mb_s"] = round(moved / MB / seconds, 1)
            results[f"{name}_ratio_to_dd"] = round(
                results[f"{name}_mb_s"] / results["dd_write_mb_s"], 2
            )
            results[f"{name}_ratio_to_small_files"] = round(
                results[f"{name}_mb_s"] / results["small_files_fdatasync_write_mb_s"], 2
            )

        config = TieringConfig(policies=(TierPolicy("cold"),), yield_to_ingest=args.yield_to_ingest)
        service = TieringService(
            ledger, blobs, mover, config, last_change_time=archive.last_activity_time
        )
        alone: list[float] = []
        during: list[float] = []
        for round_ in range(args.rounds):  # interleaved: alone, during, alone, during...
            alone.append(ingest(archive, slices(args.ingest_count, -1 - 2 * round_)))
            during.append(
                ingest_during_moves(
                    archive, ledger, service, studies, slices(args.ingest_count, -2 - 2 * round_)
                )
            )
        if not alone:  # --rounds 0: moves only
            print(json.dumps(results, indent=2))
            archive.close()
            return 0
        results["ingest_alone_inst_s"] = [round(x, 1) for x in alone]
        results["ingest_during_migration_inst_s"] = [round(x, 1) for x in during]
        changes = [100 * (d / a - 1) for a, d in zip(alone, during, strict=True)]
        results["ingest_change_percent"] = [round(x, 1) for x in changes]
        results["ingest_change_percent_median"] = round(statistics.median(changes), 1)
        results["ingest_change_percent_of_medians"] = round(
            100 * (statistics.median(during) / statistics.median(alone) - 1), 1
        )
        results["yield_to_ingest"] = args.yield_to_ingest
        archive.close()
    print(json.dumps(results, indent=2))
    return 0


def _study_of(raw: bytes) -> str:
    return str(dcmread(BytesIO(raw), stop_before_pixels=True).StudyInstanceUID)


if __name__ == "__main__":
    sys.exit(main())
