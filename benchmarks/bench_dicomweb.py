#!/usr/bin/env python
"""DICOMweb benchmark: our PACS against Orthanc with its DICOMweb plugin, same data, same run.

Measures QIDO-RS study searches over a populated archive (the study list OHIF asks for, a
broad and a selective name/ID search), series metadata of a large CT series (cold and
warm), rendered JPEG of a CT slice and of a radiograph, raw frames (latency, and throughput
with 8 concurrent clients), STOW-RS throughput, and the server's extra memory while it
streams a large study (WADO-RS).  See ``benchmarks/README.md``.

    python benchmarks/bench_dicomweb.py [--quick | --smoke] [--no-orthanc] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pydicom
from common import (
    LOCALHOST,
    MB,
    RESULTS,
    BenchError,
    DataSet,
    Row,
    Server,
    Target,
    attempt,
    ct_slice,
    ensure_set,
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
    start_orthanc,
    start_ours,
    store,
    tiny_study,
    value_at,
    wait_for_port,
    warm_page_cache,
)
from pydicom.dataset import Dataset

ROOT = "/dicom-web"
DICOM_JSON = "application/dicom+json"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"'
STUDY_ACCEPT = 'multipart/related; type="application/dicom"'
INCLUDE = "includefield=00081030,00080060"
STUDY_LIST = f"{ROOT}/studies?limit=101&offset=0&fuzzymatching=false&{INCLUDE}"
BROAD = f"{ROOT}/studies?PatientName=NGUYEN*&fuzzymatching=false&{INCLUDE}"
DICOMWEB_PLUGIN = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
# Orthanc options that bear on these measurements, recorded with their defaults.
ORTHANC_HTTP_KEYS = (
    "HttpThreadsCount",
    "HttpCompressionEnabled",
    "KeepAlive",
    "KeepAliveTimeout",
    "TcpNoDelay",
    "HttpRequestTimeout",
    "StorageCompression",
    "SyncStorageArea",
    "MaximumStorageCacheSize",
    "LimitFindResults",
    "StorageAccessOnFind",
)
# The DICOMweb plugin's own defaults (its configuration is not printed by --config).
DICOMWEB_PLUGIN_DEFAULTS = {
    "Enable": True,
    "Root": "/dicom-web/",
    "StudiesMetadata": "Full",
    "SeriesMetadata": "Full",
    "QidoCaseSensitive": True,
}
FRAME_CLIENTS = 8
STOW_BATCH = 10
# Every fourth NGUYEN patient is written the Vietnamese way, with diacritics, in UTF-8.
VIETNAMESE_GIVEN = ("Văn Anh", "Thị Bình", "Đức Chí", "Thị Dung")


@dataclass(frozen=True)
class Sizes:
    """How much data and how many repetitions a run uses."""

    qido_studies: int
    series_slices: int
    study_slices: int
    radiographs: int
    stow_instances: int
    runs: int
    broad_runs: int


# qido_studies, series_slices, study_slices, radiographs, stow_instances, runs, broad_runs
FULL = Sizes(20000, 500, 2000, 5, 200, 50, 10)
QUICK = Sizes(2000, 100, 200, 2, 50, 20, 5)
SMOKE = Sizes(30, 4, 4, 1, 10, 3, 2)


# --- data --------------------------------------------------------------------------------


def qido_study(index: int, uids: dict[str, str]) -> Dataset:
    """The DIMSE benchmark's one-instance study, some NGUYEN patients with diacritics."""
    ds = tiny_study(index, uids)
    if is_nguyen(index) and index % 4 == 0:
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = f"Nguyễn^{VIETNAMESE_GIVEN[(index // 4) % len(VIETNAMESE_GIVEN)]}"
    return ds


def series_slice(index: int, uids: dict[str, str]) -> Dataset:
    """A slice of the large CT series (metadata, rendered, frames)."""
    return ct_slice(index, uids, patient="SERIES")


def stow_slice(index: int, uids: dict[str, str]) -> Dataset:
    """A slice of the CT series sent with STOW-RS."""
    return ct_slice(index, uids, patient="STOW")


@dataclass(frozen=True)
class Instance:
    """Where an instance is, as DICOMweb paths name it."""

    study: str
    series: str
    sop: str

    @property
    def path(self) -> str:
        return f"{ROOT}/studies/{self.study}/series/{self.series}/instances/{self.sop}"


@dataclass(frozen=True)
class BenchData:
    """Every data set of one run, with the UIDs of the instances the requests name."""

    qido: DataSet
    series: DataSet
    study: DataSet
    radiographs: DataSet
    stow: DataSet
    series_instances: list[Instance]
    radiograph_instances: list[Instance]

    @property
    def stored(self) -> list[tuple[DataSet, int]]:
        """Each set loaded before measuring, with its number of storescu associations."""
        return [(self.qido, 4), (self.series, 2), (self.radiographs, 1), (self.study, 2)]


def instances_of(dataset: DataSet) -> list[Instance]:
    """The UIDs of each file of the set, read from its header."""
    found = []
    for path in dataset.paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.append(
            Instance(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        )
    return found


def prepare_data(sizes: Sizes) -> BenchData:
    """Generate (or reuse) the data sets in the work folder."""
    print("Preparing data ...", flush=True)
    series = ensure_set("series", sizes.series_slices, series_slice, {"rows": 512})
    cr = ensure_set("cr", sizes.radiographs, radiograph, {"rows": 2500})
    data = BenchData(
        qido=ensure_set("qido", sizes.qido_studies, qido_study, {"rows": 8, "vietnamese": 4}),
        series=series,
        study=ensure_set("ct", sizes.study_slices, ct_slice, {"rows": 512}),
        radiographs=cr,
        stow=ensure_set("stow", sizes.stow_instances, stow_slice, {"rows": 512}),
        series_instances=instances_of(series),
        radiograph_instances=instances_of(cr),
    )
    for dataset, _ in data.stored:
        warm_page_cache(dataset.paths)
    return data


# --- HTTP --------------------------------------------------------------------------------


class _NoDelayConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket has TCP_NODELAY, like a browser's."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Client:
    """One keep-alive HTTP/1.1 connection to a server's HTTP port.

    A server may close an idle keep-alive connection (Orthanc does after its
    ``KeepAliveTimeout``); like a browser, the client then reconnects and sends again."""

    def __init__(self, port: int) -> None:
        self.connection = _NoDelayConnection(LOCALHOST, port, timeout=300)

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[http.client.HTTPResponse, float]:
        """Send a request: the response (its body not read yet) and when the request that
        got it was sent (``time.perf_counter``)."""
        for retry in (False, True):
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=body, headers=headers)
                return self.connection.getresponse(), started
            except (http.client.RemoteDisconnected, ConnectionError):
                self.connection.close()
                if retry:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, accept: str) -> tuple[bytes, float]:
        """GET and read the whole body: the body and the seconds it took; 200 or BenchError."""
        response, started = self.request("GET", path, {"Accept": accept})
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise BenchError(f"GET {path} answered {response.status}: {body[:200]!r}")
        return body, elapsed

    def close(self) -> None:
        self.connection.close()


def timed_gets(client: Client, paths: Sequence[str], accept: str) -> tuple[list[float], bytes]:
    """One warm-up GET of the first path, then each path timed: latencies, the last body."""
    body, _ = client.get(paths[0], accept)
    latencies = []
    for path in paths:
        body, elapsed = client.get(path, accept)
        latencies.append(elapsed)
    return latencies, body


# --- measurements ------------------------------------------------------------------------


def measure_qido(client: Client, data: BenchData, sizes: Sizes) -> dict[str, Any]:
    """The OHIF study list, the broad NGUYEN* search and a one-patient search."""
    lists, body = timed_gets(client, [STUDY_LIST] * sizes.runs, DICOM_JSON)
    listed, stored = len(json.loads(body)), len({s for d, _ in data.stored for s in d.studies})
    if listed != min(101, stored):
        raise BenchError(f"the study list has {listed} of {stored} studies, expected 101")
    broad, body = timed_gets(client, [BROAD] * sizes.broad_runs, DICOM_JSON)
    matches = len(json.loads(body))
    population = sizes.qido_studies
    selective_paths = [
        f"{ROOT}/studies?PatientID=P{(k * 7919) % population:06d}&{INCLUDE}"
        for k in range(sizes.runs)
    ]
    selective, body = timed_gets(client, selective_paths, DICOM_JSON)
    if len(json.loads(body)) != 1:
        raise BenchError("the one-patient search did not find exactly one study")
    return {
        "study_list": {**percentiles(lists), "query": STUDY_LIST, "studies": listed},
        "broad": {
            **percentiles(broad),
            "query": BROAD,
            "matches": matches,
            "expected": sum(1 for i in range(population) if is_nguyen(i)),
        },
        "selective": {**percentiles(selective), "query": selective_paths[0]},
    }


def measure_metadata(client: Client, data: BenchData, sizes: Sizes) -> dict[str, Any]:
    """Series metadata: the first request after ingest (cold), then repeats (warm)."""
    first = data.series_instances[0]
    path = f"{ROOT}/studies/{first.study}/series/{first.series}/metadata"
    body, cold = client.get(path, DICOM_JSON)
    if len(json.loads(body)) != len(data.series_instances):
        raise BenchError("series metadata does not list every instance")
    warm, _ = timed_gets(client, [path] * sizes.runs, DICOM_JSON)
    return {
        "slices": len(data.series_instances),
        "cold_ms": round(cold * 1000, 2),
        "bytes": len(body),
        "warm": percentiles(warm),
    }


def measure_rendered(
    client: Client, instances: Sequence[Instance], runs: int, suffix: str = ""
) -> dict[str, Any]:
    """JPEG rendering, cycling through the instances (after one warm-up)."""
    paths = [f"{instances[i % len(instances)].path}/rendered{suffix}" for i in range(runs)]
    latencies, body = timed_gets(client, paths, "image/jpeg")
    if not body.startswith(b"\xff\xd8"):
        raise BenchError("the rendered answer is not a JPEG")
    return {**percentiles(latencies), "instances": len(instances), "jpeg_bytes": len(body)}


def measure_frame_latency(client: Client, data: BenchData, runs: int) -> dict[str, Any]:
    """One raw 512x512 frame at a time, each of another slice."""
    instances = data.series_instances
    paths = [f"{instances[i % len(instances)].path}/frames/1" for i in range(runs)]
    latencies, body = timed_gets(client, paths, FRAME_ACCEPT)
    if len(body) < 512 * 512 * 2:
        raise BenchError(f"the frame answer has only {len(body)} bytes")
    return {**percentiles(latencies), "bytes": len(body)}


def measure_frame_throughput(port: int, data: BenchData) -> dict[str, Any]:
    """Every frame of the series once, pulled by 8 concurrent clients (threads)."""
    todo = deque(f"{item.path}/frames/1" for item in data.series_instances)
    received: list[int] = []
    failures: list[str] = []

    def work() -> None:
        client = Client(port)
        try:
            while True:
                try:
                    path = todo.popleft()
                except IndexError:
                    return
                body, _ = client.get(path, FRAME_ACCEPT)
                received.append(len(body))
        except (BenchError, OSError, http.client.HTTPException) as exc:
            failures.append(str(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(FRAME_CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    seconds = time.perf_counter() - started
    if failures or len(received) != len(data.series_instances):
        raise BenchError(f"{len(received)} frames received; {failures[:1]}")
    return {
        "clients": FRAME_CLIENTS,
        "frames": len(received),
        "seconds": round(seconds, 3),
        "frames_per_s": round(len(received) / seconds, 1),
        "mb_per_s": round(sum(received) / MB / seconds, 1),
    }


def multipart(files: Sequence[Path]) -> tuple[bytes, str]:
    """A multipart/related body of Part 10 files and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + path.read_bytes()
        for path in files
    ]
    body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def measure_stow(client: Client, dataset: DataSet) -> dict[str, Any]:
    """STOW-RS of the set, 10 instances a request, one request after the other."""
    paths = dataset.paths
    requests = [multipart(paths[i : i + STOW_BATCH]) for i in range(0, len(paths), STOW_BATCH)]
    started = time.perf_counter()
    for body, content_type in requests:
        headers = {"Content-Type": content_type, "Accept": DICOM_JSON}
        response, _ = client.request("POST", f"{ROOT}/studies", headers, body)
        answer = response.read()
        if response.status != 200:
            raise BenchError(f"STOW-RS answered {response.status}: {answer[:300]!r}")
    seconds = time.perf_counter() - started
    return {
        "instances": len(paths),
        "per_request": STOW_BATCH,
        **rate(len(paths), dataset.total_bytes, seconds),
    }


def reset_peak(pids: Sequence[int]) -> None:
    """Reset VmHWM (peak RSS) of the processes to their current RSS (Linux clear_refs 5)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def measure_memory(server: Server, client: Client, data: BenchData) -> dict[str, Any]:
    """Server RSS while it streams the large study (WADO-RS retrieve), the client reading
    and discarding 1 MB chunks as fast as it can; RSS is sampled every 10 ms."""
    study = data.study
    pids = server.pids()
    reset_peak(pids)
    before = memory_kb(pids)["VmRSS"]
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, memory_kb(pids)["VmRSS"])
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        response, _ = client.request(
            "GET", f"{ROOT}/studies/{study.studies[0]}", {"Accept": STUDY_ACCEPT}
        )
        total = 0
        while chunk := response.read(1 << 20):
            total += len(chunk)
        seconds = time.perf_counter() - started
    finally:
        done.set()
        sampler.join()
    high_water = memory_kb(pids)["VmHWM"]
    if response.status != 200 or total < study.total_bytes:
        raise BenchError(f"study retrieve: status {response.status}, {total} bytes")
    return {
        "study_mb": round(study.total_bytes / MB, 1),
        "instances": len(study.names),
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / MB / seconds, 1),
        "rss_before_mb": round(before / 1024, 1),
        "extra_rss_mb": round((peak - before) / 1024, 1),
        "extra_peak_mb": round((max(high_water, peak) - before) / 1024, 1),
        "extra_over_study": round((max(high_water, peak) - before) * 1024 / study.total_bytes, 4),
    }


# --- one target ----------------------------------------------------------------------------


# The measurements, in order; each takes the server and a client connected to it.
Measure = Callable[[Server, Client], Any]


def measures(data: BenchData, sizes: Sizes) -> list[tuple[str, Measure]]:
    """(result key, measurement) of every line after the load."""
    return [
        ("metadata", lambda _, client: measure_metadata(client, data, sizes)),
        ("qido", lambda _, client: measure_qido(client, data, sizes)),
        (
            "rendered_ct",
            lambda _, client: measure_rendered(client, data.series_instances, sizes.runs),
        ),
        (
            "rendered_cr",
            lambda _, client: measure_rendered(
                client, data.radiograph_instances, sizes.runs // 2 or 1
            ),
        ),
        ("frame", lambda _, client: measure_frame_latency(client, data, sizes.runs)),
        ("frames_8", lambda server, _: measure_frame_throughput(server.http_port, data)),
        ("stow", lambda _, client: measure_stow(client, data.stow)),
        ("memory", lambda server, client: measure_memory(server, client, data)),
    ]


def start_and_load(
    target: Target, data: BenchData, folder: Path, results: dict[str, Any]
) -> tuple[Server, Client]:
    """A fresh server of the target's kind, loaded with the data with storescu."""
    logs = folder / "tools"
    logs.mkdir(parents=True)
    print(f"\n== {target.name} ({target.version}): load, load average {os.getloadavg()[0]:.1f}")
    server = target.start(folder / "server", None)
    client = Client(server.http_port)
    try:
        wait_for_port(server.http_port, server.process)
        if target.name == "orthanc":
            body, _ = client.get("/plugins/dicom-web", "application/json")
            results["dicomweb_plugin"] = json.loads(body)
        for dataset, associations in data.stored:
            load = partial(store, server, dataset, associations, logs)
            attempt(results, f"load_{dataset.name}", load)
    except BaseException:
        client.close()
        results["log_server"] = log_summary(server.log, target.log_issue, server.stop())
        raise
    return server, client


def run_targets(
    targets: Sequence[Target], data: BenchData, sizes: Sizes, scratch: Path
) -> dict[str, dict[str, Any]]:
    """Start and load every target, then take each measurement on each target in turn, so
    that a change in the machine's other load hits both alike."""
    results: dict[str, dict[str, Any]] = {target.name: {} for target in targets}
    running: dict[str, tuple[Target, Server, Client]] = {}
    errors = (BenchError, OSError, http.client.HTTPException)
    try:
        for target in targets:
            try:
                server, client = start_and_load(
                    target, data, scratch / target.name, results[target.name]
                )
                running[target.name] = (target, server, client)
            except BenchError as exc:
                print(f"{target.name}: FAILED: {exc}", flush=True)
                results[target.name]["run"] = {"error": str(exc)}
        print(f"\n== measurements ({', '.join(running)} in turn)", flush=True)
        for key, measure in measures(data, sizes):
            for name, (_, server, client) in running.items():
                loads = results[name].setdefault("load_average", {})
                loads[key] = os.getloadavg()[0]  # other work on the machine
                print(f"  [{name}]", end="", flush=True)
                attempt(results[name], key, partial(measure, server, client), errors)
    finally:
        for name, (target, server, client) in running.items():
            client.close()
            results[name]["log_server"] = log_summary(server.log, target.log_issue, server.stop())
    return results


# --- report ------------------------------------------------------------------------------


def table_rows(sizes: Sizes, data: BenchData) -> list[Row]:
    """(label, unit, result path) of each printed line."""
    slices = len(data.series_instances)
    study_mb = data.study.total_bytes / MB
    return [
        (
            f"QIDO study list (limit=101) of {sizes.qido_studies} studies",
            "p50 ms",
            "qido.study_list.p50_ms",
        ),
        ("", "p95 ms", "qido.study_list.p95_ms"),
        ("QIDO PatientName=NGUYEN*", "p50 ms", "qido.broad.p50_ms"),
        ("", "p95 ms", "qido.broad.p95_ms"),
        ("", "matches", "qido.broad.matches"),
        ("QIDO PatientID (1 match)", "p50 ms", "qido.selective.p50_ms"),
        ("", "p95 ms", "qido.selective.p95_ms"),
        (f"Series metadata, {slices} slices, cold", "ms", "metadata.cold_ms"),
        (f"Series metadata, {slices} slices, warm", "p50 ms", "metadata.warm.p50_ms"),
        ("Rendered CT slice 512x512, JPEG", "p50 ms", "rendered_ct.p50_ms"),
        ("Rendered CR 2500x2048, JPEG", "p50 ms", "rendered_cr.p50_ms"),
        ("Frame 512x512 raw (frames/1)", "p50 ms", "frame.p50_ms"),
        (f"Frames, {FRAME_CLIENTS} clients, {slices} frames", "frames/s", "frames_8.frames_per_s"),
        ("", "MB/s", "frames_8.mb_per_s"),
        (
            f"STOW-RS CT x{sizes.stow_instances}, {STOW_BATCH}/request",
            "inst/s",
            "stow.instances_per_s",
        ),
        ("", "MB/s", "stow.mb_per_s"),
        (f"WADO-RS study retrieve, {study_mb:,.0f} MB", "MB/s", "memory.mb_per_s"),
        ("", "extra MB", "memory.extra_peak_mb"),
        ("Server RSS before the retrieve", "MB", "memory.rss_before_mb"),
        (
            f"Load {sizes.qido_studies} studies (storescu, 4 assoc)",
            "inst/s",
            "load_qido.instances_per_s",
        ),
    ]


def target_checks(sizes: Sizes, results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets, each with our figure and whether it is met."""
    ours, orthanc = results.get("ours", {}), results.get("orthanc", {})
    lines = []

    def check(label: str, mine: float | None, met: bool | None) -> None:
        verdict = "-" if met is None else ("met" if met else "MISSED")
        figure = "-" if mine is None else f"{mine:,.1f}"
        lines.append(f"{label:<58} {figure:>10}  {verdict}")

    def below(path: str, limit: float) -> tuple[float | None, bool | None]:
        mine = value_at(ours, path)
        return mine, None if mine is None else mine < limit

    def versus(path: str, higher_is_better: bool) -> tuple[float | None, bool | None]:
        mine, theirs = value_at(ours, path), value_at(orthanc, path)
        if mine is None or theirs is None:
            return mine, None
        return mine, mine >= theirs if higher_is_better else mine <= theirs

    check("series metadata warm < 50 ms", *below("metadata.warm.p50_ms", 50))
    check("series metadata cold < 500 ms", *below("metadata.cold_ms", 500))
    check("QIDO study list p95 < 50 ms", *below("qido.study_list.p95_ms", 50))
    check("QIDO broad name search (3,500 of 20,000) p50 < 300 ms", *below("qido.broad.p50_ms", 300))
    check("rendered CT JPEG <= Orthanc", *versus("rendered_ct.p50_ms", False))
    check("rendered CR JPEG <= Orthanc", *versus("rendered_cr.p50_ms", False))
    check("raw frame <= Orthanc", *versus("frame.p50_ms", False))
    check("frames/s with 8 clients >= Orthanc", *versus("frames_8.frames_per_s", True))
    mine = value_at(ours, "memory.extra_peak_mb")
    study_mb = value_at(ours, "memory.study_mb") or 0
    check(
        f"extra memory streaming a {study_mb:,.0f} MB study < 100 MB per GB",
        mine,
        None if mine is None else mine < 100 * max(1.0, study_mb / 1000),
    )
    if sizes != FULL:
        lines.append("(not the full sizes: the absolute targets are for the full run)")
    return lines


# --- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small data (2,000 studies, 100 slices)")
    size.add_argument("--smoke", action="store_true", help="a handful of instances (for tests)")
    parser.add_argument("--no-orthanc", action="store_true", help="measure our server only")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="result file (default benchmarks/results/dicomweb-<timestamp>.json)",
    )
    return parser.parse_args(argv)


def dicomweb_plugin() -> str | None:
    """The path of Orthanc's DICOMweb plugin, if installed."""
    return next((path for path in DICOMWEB_PLUGIN if Path(path).exists()), None)


def build_targets(args: argparse.Namespace) -> list[Target]:
    """Our server, and Orthanc with the DICOMweb plugin when wanted and installed."""
    targets = [Target("ours", start_ours, ours_log_issue, "pacs, 1 worker", {"workers": 1})]
    version, plugin = orthanc_version(), dicomweb_plugin()
    if args.no_orthanc:
        print("Orthanc skipped (--no-orthanc).")
    elif not version or plugin is None:
        print("Orthanc skipped: Orthanc or its DICOMweb plugin (orthanc-dicomweb) is missing.")
    else:
        settings = {
            **orthanc_defaults(ORTHANC_HTTP_KEYS),
            "plugin": plugin,
            "DicomWeb (plugin defaults, not overridden)": DICOMWEB_PLUGIN_DEFAULTS,
        }

        def start(folder: Path, scp_port: int | None) -> Server:
            return start_orthanc(folder, scp_port, [plugin], DicomWeb={"Enable": True})

        targets.append(Target("orthanc", start, orthanc_log_issue, version, settings))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.json or RESULTS / f"dicomweb-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    targets = build_targets(args)
    machine = machine_info(orthanc_version())
    data = prepare_data(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-dicomweb-") as tmp:
        scratch = Path(tmp)
        try:
            results = run_targets(targets, data, sizes, scratch)
        finally:
            keep_logs(scratch, out.with_suffix(".logs"))
    rows = table_rows(sizes, data)
    table = render_table(rows, results)
    checks = target_checks(sizes, results)
    print("\n" + table + "\n\nTargets (issue 3), our figure:\n" + "\n".join(checks))
    report = {
        "timestamp": stamp,
        "mode": mode,
        "sizes": sizes.__dict__,
        "machine": machine,
        "targets": {t.name: {"version": t.version, "settings": t.settings} for t in targets},
        "results": results,
        "figures": {
            name: {path: value_at(found, path) for _, _, path in rows}
            for name, found in results.items()
        },
        "ratios_ours_over_orthanc": ratios(results, rows),
        "table": table.splitlines(),
        "target_checks": checks,
    }
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nResults written to {out} (logs in {out.with_suffix('.logs')})")
    failed = [
        name
        for name, found in results.items()
        for v in found.values()
        if isinstance(v, dict) and "error" in v
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
