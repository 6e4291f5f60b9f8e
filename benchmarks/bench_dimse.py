#!/usr/bin/env python
"""DIMSE benchmark: our PACS against Orthanc, on the same synthetic data, in the same run.

Measures C-STORE throughput (DCMTK ``storescu``, 1 and 4 associations), C-FIND latency at
STUDY level over a populated archive (pynetdicom SCU), C-MOVE (to DCMTK ``storescp``) and
C-GET (DCMTK ``getscu``) of a 100-slice study, and the server's memory growth while storing
one 30 MB radiograph.  See ``benchmarks/README.md``.

    python benchmarks/bench_dimse.py [--quick] [--no-orthanc] [--workers N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    CALLING_AE,
    DCMTK_ENV,
    LOCALHOST,
    RESULTS,
    SCP_AE,
    WORK,
    BenchError,
    DataSet,
    Server,
    Target,
    association,
    attempt,
    ct_slice,
    dcmtk_tool,
    ensure_set,
    free_port,
    is_nguyen,
    keep_logs,
    log_summary,
    machine_info,
    memory_kb,
    orthanc_defaults,
    orthanc_log_issue,
    orthanc_version,
    ours_log_issue,
    percentiles,
    radiograph,
    rate,
    ratios,
    render_table,
    run_tools,
    start_orthanc,
    start_ours,
    stop_process,
    store,
    tiny_study,
    wait_for_port,
    warm_page_cache,
)
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)

STUDY_RETURN_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)


@dataclass(frozen=True)
class Sizes:
    """How much data and how many repetitions a run uses."""

    ct_slices: int
    radiographs: int
    find_studies: int
    retrieve_runs: int
    retrieve_slices: int = 100
    selective_runs: int = 50
    broad_runs: int = 10


FULL = Sizes(ct_slices=2000, radiographs=20, find_studies=20000, retrieve_runs=3)
QUICK = Sizes(ct_slices=200, radiographs=5, find_studies=2000, retrieve_runs=1)


# --- data --------------------------------------------------------------------------------


def retrieve_slice(index: int, uids: dict[str, str]) -> Dataset:
    """A slice of the separate 100-slice study used for C-MOVE and C-GET."""
    return ct_slice(index, uids, patient="RETRIEVE")


def big_radiograph(index: int, uids: dict[str, str]) -> Dataset:
    """The 3900x3900 16-bit (30 MB) radiograph of the memory test."""
    return radiograph(index + 90000, uids, rows=3900, columns=3900)


@dataclass(frozen=True)
class BenchData:
    """Every data set of one run."""

    ct: DataSet
    radiographs: DataSet
    big: DataSet
    tiny: DataSet
    retrieve: DataSet


def prepare_data(sizes: Sizes) -> BenchData:
    """Generate (or reuse) the data sets in ``benchmarks/.work``."""
    print(f"Preparing data in {WORK} ...", flush=True)
    data = BenchData(
        ct=ensure_set("ct", sizes.ct_slices, ct_slice, {"rows": 512}),
        radiographs=ensure_set("cr", sizes.radiographs, radiograph, {"rows": 2500}),
        big=ensure_set("big", 1, big_radiograph, {"rows": 3900}),
        tiny=ensure_set("tiny", sizes.find_studies, tiny_study, {"rows": 8}),
        retrieve=ensure_set("retrieve", sizes.retrieve_slices, retrieve_slice, {"rows": 512}),
    )
    for dataset in (data.ct, data.radiographs, data.big, data.tiny, data.retrieve):
        warm_page_cache(dataset.paths)
    return data


# --- measurements ------------------------------------------------------------------------


def verify_stored(server: Server, dataset: DataSet, per_study: int) -> None:
    """Check with C-FIND that every study of the set holds its instances (first 50 studies)."""
    with association(server, StudyRootQueryRetrieveInformationModelFind) as assoc:
        for study_uid in sorted(set(dataset.studies))[:50]:
            answers = find_studies(assoc, StudyInstanceUID=study_uid)
            count = int(answers[0].NumberOfStudyRelatedInstances) if answers else 0
            if count != per_study:
                raise BenchError(
                    f"study {study_uid} holds {count} instance(s) on "
                    f"{server.label}, expected {per_study}"
                )


def find_studies(assoc: Association, **filters: str) -> list[Dataset]:
    """One STUDY-level C-FIND with the usual worklist return keys; the matches."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for keyword in STUDY_RETURN_KEYS:
        setattr(query, keyword, "")
    for keyword, value in filters.items():
        setattr(query, keyword, value)
    matches: list[Dataset] = []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:
            raise BenchError("C-FIND: no response (timeout or abort)")
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            matches.append(identifier)
        elif code == 0:
            break
        else:
            raise BenchError(f"C-FIND failed with status 0x{code:04X}")
    return matches


def timed_finds(
    assoc: Association, queries: Sequence[dict[str, str]]
) -> tuple[list[float], list[int]]:
    """Run the queries one after the other: their latencies and match counts."""
    find_studies(assoc, **queries[0])  # warm-up, not counted
    latencies, counts = [], []
    for filters in queries:
        started = time.perf_counter()
        matches = find_studies(assoc, **filters)
        latencies.append(time.perf_counter() - started)
        counts.append(len(matches))
    return latencies, counts


def measure_finds(server: Server, sizes: Sizes, logs: Path) -> dict[str, Any]:
    """Selective (one PatientID) and broad (PatientName=NGUYEN*) STUDY-level C-FIND."""
    population = sizes.find_studies
    selective = [
        {"PatientID": f"P{(k * 7919) % population:06d}"} for k in range(sizes.selective_runs)
    ]
    broad = [{"PatientName": "NGUYEN*"}] * sizes.broad_runs
    expected_broad = sum(1 for i in range(population) if is_nguyen(i))
    with association(server, StudyRootQueryRetrieveInformationModelFind) as assoc:
        selective_times, selective_counts = timed_finds(assoc, selective)
        broad_times, broad_counts = timed_finds(assoc, broad)
    findscu = findscu_broad(server, min(5, sizes.broad_runs), expected_broad, logs)
    return {
        "selective": {
            **percentiles(selective_times),
            "query": "PatientID=<one patient>",
            "wrong_counts": sum(1 for c in selective_counts if c != 1),
        },
        "broad": {
            **percentiles(broad_times),
            "query": "PatientName=NGUYEN*",
            "matches": max(broad_counts),
            "expected": expected_broad,
        },
        "broad_findscu": findscu,
    }


def findscu_broad(server: Server, runs: int, expected: int, logs: Path) -> dict[str, Any]:
    """The broad query with DCMTK findscu (one process and association per run).

    Tells the server's cost from the pynetdicom SCU's, which decodes each match in Python.
    """
    keys = [
        arg for keyword in STUDY_RETURN_KEYS if keyword != "PatientName" for arg in ("-k", keyword)
    ]
    command = [
        dcmtk_tool("findscu"),
        "-S",
        "-aet",
        CALLING_AE,
        "-aec",
        server.ae_title,
        *keys,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientName=NGUYEN*",
        LOCALHOST,
        str(server.port),
    ]
    times, quiet_times, matches = [], [], 0
    for run in range(runs):
        log = logs / f"findscu-{server.label}-{run}.log"
        times.append(run_tools([command], [log], logs, timeout=300))
        matches = log.read_text(errors="replace").count("(Pending)")
        if matches != expected:
            raise BenchError(
                f"findscu got {matches} match(es), expected {expected} (see {log.name})"
            )
        # The same query with findscu -q, which does not log each answer: this run's time is
        # closer to the server's own, since the client no longer prints 3,500 responses.
        quiet_log = logs / f"findscu-quiet-{server.label}-{run}.log"
        quiet_times.append(
            run_tools([[command[0], "-q", *command[1:]]], [quiet_log], logs, timeout=300)
        )
    quiet = {f"quiet_{key}": value for key, value in percentiles(quiet_times).items()}
    return {**percentiles(times), **quiet, "query": "PatientName=NGUYEN*", "matches": matches}


@dataclass
class StoreScp:
    """DCMTK storescp, the C-MOVE destination shared by every target."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()

    def received(self) -> int:
        return sum(1 for _ in self.folder.iterdir())


def start_storescp(folder: Path) -> StoreScp:
    """Start storescp writing what it receives into ``folder``."""
    folder.mkdir(parents=True)
    port = free_port()
    log = folder.parent / "storescp.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [dcmtk_tool("storescp"), "-aet", SCP_AE, "-od", str(folder), str(port)],
            env=DCMTK_ENV,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
    except Exception:
        stop_process(process)
        raise
    return StoreScp(port, folder, process)


def retrieve_keys(study_uid: str) -> list[str]:
    return ["-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]


def measure_retrieve(
    server: Server, dataset: DataSet, scp: StoreScp, runs: int, logs: Path, service: str
) -> dict[str, Any]:
    """C-MOVE to storescp or C-GET with getscu of the study: median of ``runs`` runs."""
    study_uid, expected = dataset.studies[0], len(dataset.names)
    times = []
    for run in range(runs):
        if service == "move":
            scp.clear()
            out = scp.folder
            command = [
                dcmtk_tool("movescu"),
                "-aet",
                CALLING_AE,
                "-aec",
                server.ae_title,
                "-aem",
                SCP_AE,
                *retrieve_keys(study_uid),
                LOCALHOST,
                str(server.port),
            ]
        else:
            out = logs / f"getscu-{server.label}-{run}"
            out.mkdir()
            command = [
                dcmtk_tool("getscu"),
                "-aet",
                CALLING_AE,
                "-aec",
                server.ae_title,
                "-od",
                str(out),
                *retrieve_keys(study_uid),
                LOCALHOST,
                str(server.port),
            ]
        log = logs / f"{service}-{server.label}-{run}.log"
        times.append(run_tools([command], [log], logs, timeout=300))
        received = sum(1 for _ in out.iterdir())
        if service == "get":
            shutil.rmtree(out)
        if received != expected:
            raise BenchError(
                f"C-{service.upper()} delivered {received} of {expected} instance(s) (see {log.name})"
            )
    seconds = float(np.median(times))
    return {"runs": runs, "instances": expected, **rate(expected, dataset.total_bytes, seconds)}


def measure_memory(server: Server, big: DataSet, logs: Path) -> dict[str, Any]:
    """Server RSS (all its processes) before and after storing the 30 MB radiograph."""
    before = memory_kb(server.pids())
    sent = store(server, big, 1, logs)
    time.sleep(1.0)
    after = memory_kb(server.pids())
    return {
        "file_mb": sent["mb"],
        "rss_before_mb": round(before["VmRSS"] / 1024, 1),
        "rss_after_mb": round(after["VmRSS"] / 1024, 1),
        "rss_growth_mb": round((after["VmRSS"] - before["VmRSS"]) / 1024, 1),
        "peak_growth_mb": round((after["VmHWM"] - before["VmRSS"]) / 1024, 1),
    }


def run_target(
    target: Target, data: BenchData, sizes: Sizes, scp: StoreScp, folder: Path
) -> dict[str, Any]:
    """Every measurement against fresh instances of one kind of server."""
    results: dict[str, Any] = {}
    logs = folder / "tools"
    logs.mkdir(parents=True)
    print(f"\n== {target.name} ({target.version})", flush=True)
    server = target.start(folder / "single", scp.port)
    try:
        attempt(results, "memory", lambda: measure_memory(server, data.big, logs))
        attempt(results, "store_ct_1", lambda: store(server, data.ct, 1, logs))
        attempt(results, "store_cr_1", lambda: store(server, data.radiographs, 1, logs))
        attempt(results, "store_tiny_4", lambda: store(server, data.tiny, 4, logs))
        attempt(results, "store_retrieve_1", lambda: store(server, data.retrieve, 1, logs))
        attempt(results, "verify", lambda: verify_all(server, data))
        attempt(results, "find", lambda: measure_finds(server, sizes, logs))
        attempt(
            results,
            "move",
            lambda: measure_retrieve(server, data.retrieve, scp, sizes.retrieve_runs, logs, "move"),
        )
        attempt(
            results,
            "get",
            lambda: measure_retrieve(server, data.retrieve, scp, sizes.retrieve_runs, logs, "get"),
        )
    finally:
        results["log_single"] = log_summary(server.log, target.log_issue, server.stop())
    server = target.start(folder / "parallel", scp.port)
    try:
        attempt(results, "store_ct_4", lambda: store(server, data.ct, 4, logs))
        attempt(results, "store_cr_4", lambda: store(server, data.radiographs, 4, logs))
        attempt(results, "verify_parallel", lambda: verify_all(server, data, parallel=True))
    finally:
        results["log_parallel"] = log_summary(server.log, target.log_issue, server.stop())
    return results


def verify_all(server: Server, data: BenchData, parallel: bool = False) -> str:
    """Every stored set is complete on the server."""
    verify_stored(server, data.ct, len(data.ct.names))
    verify_stored(server, data.radiographs, 1)
    if not parallel:
        verify_stored(server, data.big, 1)
        verify_stored(server, data.retrieve, len(data.retrieve.names))
    return "ok"


def table_rows(sizes: Sizes, data: BenchData) -> list[tuple[str, str, str]]:
    """(label, unit, result path) of each printed line."""
    ct = f"CT 512x512 x{len(data.ct.names)}"
    cr = f"CR 2500x2048 x{len(data.radiographs.names)}"
    return [
        (f"C-STORE {ct}, 1 assoc", "inst/s", "store_ct_1.instances_per_s"),
        ("", "MB/s", "store_ct_1.mb_per_s"),
        (f"C-STORE {ct}, 4 assoc", "inst/s", "store_ct_4.instances_per_s"),
        ("", "MB/s", "store_ct_4.mb_per_s"),
        (f"C-STORE {cr}, 1 assoc", "inst/s", "store_cr_1.instances_per_s"),
        ("", "MB/s", "store_cr_1.mb_per_s"),
        (f"C-STORE {cr}, 4 assoc", "inst/s", "store_cr_4.instances_per_s"),
        ("", "MB/s", "store_cr_4.mb_per_s"),
        (
            f"C-STORE 8x8 x{sizes.find_studies} studies, 4 assoc",
            "inst/s",
            "store_tiny_4.instances_per_s",
        ),
        (
            f"C-FIND STUDY PatientID ({sizes.find_studies} studies)",
            "p50 ms",
            "find.selective.p50_ms",
        ),
        ("", "p95 ms", "find.selective.p95_ms"),
        ("C-FIND STUDY PatientName=NGUYEN*", "p50 ms", "find.broad.p50_ms"),
        ("", "p95 ms", "find.broad.p95_ms"),
        ("", "matches", "find.broad.matches"),
        ("C-FIND STUDY PatientName=NGUYEN*, findscu", "p50 ms", "find.broad_findscu.p50_ms"),
        (
            "C-FIND STUDY PatientName=NGUYEN*, findscu -q",
            "p50 ms",
            "find.broad_findscu.quiet_p50_ms",
        ),
        (f"C-MOVE {sizes.retrieve_slices}-slice CT study", "inst/s", "move.instances_per_s"),
        (f"C-GET {sizes.retrieve_slices}-slice CT study", "inst/s", "get.instances_per_s"),
        ("Server RSS at start (after C-ECHO)", "MB", "memory.rss_before_mb"),
        ("RSS growth storing 30 MB CR", "MB", "memory.rss_growth_mb"),
        ("Peak RSS growth storing 30 MB CR", "MB", "memory.peak_growth_mb"),
    ]


# --- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small data (200 CT slices, 5 CR, 2,000 studies)"
    )
    parser.add_argument("--no-orthanc", action="store_true", help="measure our server only")
    parser.add_argument(
        "--workers", type=int, default=1, help="[dimse] workers of our server (default 1)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="result file (default benchmarks/results/dimse-<timestamp>.json)",
    )
    parser.add_argument(
        "--extra-config",
        default="",
        help="TOML appended to our server's configuration, e.g. '[storage]\\nreplica_path=...'",
    )
    return parser.parse_args(argv)


def build_targets(args: argparse.Namespace) -> list[Target]:
    """Our server, and Orthanc when wanted and installed."""
    targets = [
        Target(
            "ours",
            lambda folder, port: start_ours(
                folder, port, args.workers, args.extra_config.replace("\\n", "\n")
            ),
            ours_log_issue,
            f"pacs, {args.workers} worker(s)",
            {"workers": args.workers},
        )
    ]
    version = orthanc_version()
    if args.no_orthanc:
        print("Orthanc skipped (--no-orthanc).")
    elif not version:
        print("Orthanc skipped: the Orthanc program is not installed.")
    else:
        targets.append(
            Target("orthanc", start_orthanc, orthanc_log_issue, version, orthanc_defaults())
        )
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    sizes = QUICK if args.quick else FULL
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.json or RESULTS / f"dimse-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    targets = build_targets(args)
    machine = machine_info(orthanc_version())  # the git state the servers start from
    data = prepare_data(sizes)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dimse-") as tmp:
        scratch = Path(tmp)
        scp = start_storescp(scratch / "storescp" / "received")
        try:
            for target in targets:
                try:
                    results[target.name] = run_target(
                        target, data, sizes, scp, scratch / target.name
                    )
                except BenchError as exc:
                    print(f"{target.name}: FAILED: {exc}", flush=True)
                    results[target.name] = {"run": {"error": str(exc)}}
        finally:
            stop_process(scp.process)
            keep_logs(scratch, out.with_suffix(".logs"))
    table = render_table(table_rows(sizes, data), results)
    print("\n" + table)
    report = {
        "timestamp": stamp,
        "mode": "quick" if args.quick else "full",
        "sizes": sizes.__dict__,
        "machine": machine,
        "targets": {t.name: {"version": t.version, "settings": t.settings} for t in targets},
        "results": results,
        "ratios_ours_over_orthanc": ratios(results, table_rows(sizes, data)),
        "table": table.splitlines(),
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nResults written to {out} (logs in {out.with_suffix('.logs')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
