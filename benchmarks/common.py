"""What the benchmarks share: synthetic data, starting and stopping our server and Orthanc,
DCMTK tools, process memory, latency statistics, the result table and machine info.

The benchmark scripts (``bench_*.py``) import it as ``common``: they run as
``python benchmarks/bench_X.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pydicom
import pynetdicom
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Generated data is cached here (gitignored); BENCH_WORK moves it (the smoke test does).
WORK = Path(os.environ.get("BENCH_WORK") or BENCH_DIR / ".work")
RESULTS = BENCH_DIR / "results"
LOCALHOST = "127.0.0.1"
CALLING_AE = "BENCHSCU"
SCP_AE = "BENCHSCP"
OURS_AE = "PACS"
ORTHANC_AE = "ORTHANC"
DATA_VERSION = 1
MB = 1_000_000  # throughput and sizes are in decimal megabytes
NGUYEN_EVERY = (7, 40)  # patient i is a NGUYEN when i % 40 < 7: 17.5 %
# DCMTK >= 3.6 keeps Nagle's algorithm on unless TCP_NODELAY is set in the environment.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


SURNAMES = (
    "TRAN",
    "LE",
    "PHAM",
    "HOANG",
    "SMITH",
    "MARTIN",
    "GARCIA",
    "MULLER",
    "ROSSI",
    "DUBOIS",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "PETERS",
    "KOWALSKI",
    "SILVA",
)
GIVEN_NAMES = ("AN", "BINH", "CHI", "DUNG", "JOHN", "MARY", "ANNA", "PAUL", "LUCA", "EMMA")


class BenchError(RuntimeError):
    """A measurement could not be completed."""


# --- synthetic data ----------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    """Part 10 files of one kind, all in one folder, with the studies they belong to."""

    name: str
    folder: Path
    names: list[str]
    studies: list[str]

    @property
    def paths(self) -> list[Path]:
        return [self.folder / name for name in self.names]

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.paths)


# Makes instance ``index`` of a set, given the UIDs shared by the whole set.
Maker = Callable[[int, dict[str, str]], Dataset]


def load_factories() -> ModuleType:
    """``tests/factories.py``, imported by path (the tests folder is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "bench_factories", REPO / "tests" / "factories.py"
    )
    if spec is None or spec.loader is None:
        raise BenchError("cannot load tests/factories.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FACTORIES = load_factories()


def ct_slice(index: int, uids: dict[str, str], patient: str = "CT") -> Dataset:
    """One 512x512 16-bit axial CT slice with a realistic header."""
    z = -100.0 - index * 0.625
    return FACTORIES.make_image(
        rows=512,
        columns=512,
        patient_id=f"{patient}0001",
        patient_name=f"BENCH^{patient}",
        study_uid=uids["study"],
        series_uid=uids["series"],
        accession=f"{patient}ACC1",
        study_description="CT CHEST ABDOMEN PELVIS",
        instance_number=index + 1,
        pixel_seed=index,
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        Manufacturer="BENCH",
        ManufacturerModelName="Synthetic CT",
        InstitutionName="Benchmark Hospital",
        StationName="CT01",
        BodyPartExamined="CHEST",
        ProtocolName="CHEST ABDOMEN PELVIS",
        PatientAge="054Y",
        PatientPosition="FFS",
        KVP="120",
        XRayTubeCurrent=250,
        ExposureTime=500,
        ConvolutionKernel="STANDARD",
        SliceThickness="0.625",
        SpacingBetweenSlices="0.625",
        PixelSpacing=["0.703125", "0.703125"],
        ImagePositionPatient=["-180.0", "-180.0", f"{z:.3f}"],
        ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
        SliceLocation=f"{z:.3f}",
        FrameOfReferenceUID=uids["frame"],
        AcquisitionNumber=1,
        ContentDate="20240115",
        ContentTime="101500",
        RescaleIntercept="-1024",
        RescaleSlope="1",
        WindowCenter="40",
        WindowWidth="400",
    )


def radiograph(index: int, uids: dict[str, str], rows: int = 2500, columns: int = 2048) -> Dataset:
    """A CR chest radiograph (16-bit), each in its own study for its own patient."""
    del uids
    return FACTORIES.make_radiograph(
        rows=rows,
        columns=columns,
        patient_id=f"CR{index:05d}",
        patient_name=f"{SURNAMES[index % len(SURNAMES)]}^{GIVEN_NAMES[index % 10]}",
        accession=f"CRACC{index:05d}",
        pixel_seed=index,
        ImageType=["ORIGINAL", "PRIMARY"],
        Manufacturer="BENCH",
        InstitutionName="Benchmark Hospital",
        ViewPosition="PA",
        ImagerPixelSpacing=["0.139", "0.139"],
        KVP="125",
        PatientAge="061Y",
    )


def is_nguyen(index: int) -> bool:
    """Whether patient ``index`` of the C-FIND population is named NGUYEN."""
    return index % NGUYEN_EVERY[1] < NGUYEN_EVERY[0]


def tiny_study(index: int, uids: dict[str, str]) -> Dataset:
    """One 8x8 instance: the only instance of study ``index`` of patient ``index``."""
    del uids
    if is_nguyen(index):
        name = f"NGUYEN^{GIVEN_NAMES[index % len(GIVEN_NAMES)]}"
    else:
        name = f"{SURNAMES[(index * 31) % len(SURNAMES)]}^{GIVEN_NAMES[index % 10]}"
    return FACTORIES.make_image(
        rows=8,
        columns=8,
        patient_id=f"P{index:06d}",
        patient_name=name,
        accession=f"A{index:07d}",
        study_date=f"20{10 + index % 14:02d}{1 + index % 12:02d}{1 + index % 28:02d}",
        study_description=("CT HEAD", "CT CHEST", "CT ABDOMEN", "CT SPINE")[index % 4],
        pixel_seed=index,
    )


def _read_manifest(folder: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != DATA_VERSION or manifest.get("params") != params:
        return None
    return manifest


def ensure_set(name: str, count: int, make: Maker, params: dict[str, Any]) -> DataSet:
    """The first ``count`` files of set ``name`` in ``.work``, generating what is missing."""
    folder = WORK / name
    manifest = _read_manifest(folder, params)
    names = [f"{name}-{index:06d}.dcm" for index in range(count)]
    if manifest and manifest["count"] >= count and all((folder / n).exists() for n in names):
        return DataSet(name, folder, names, manifest["studies"][:count])
    if manifest is None or not all((folder / n).exists() for n in names[: manifest["count"]]):
        shutil.rmtree(folder, ignore_errors=True)
        uids = {key: FACTORIES.new_uid() for key in ("study", "series", "frame")}
        manifest = {
            "version": DATA_VERSION,
            "params": params,
            "count": 0,
            "uids": uids,
            "studies": [],
        }
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for index in range(manifest["count"], count):
        ds = make(index, manifest["uids"])
        FACTORIES.write(ds, folder, names[index])
        manifest["studies"].append(str(ds.StudyInstanceUID))
        if (index + 1) % 1000 == 0:
            print(f"  {name}: {index + 1}/{count} ({time.monotonic() - started:.0f} s)", flush=True)
    manifest["count"] = count
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return DataSet(name, folder, names, manifest["studies"][:count])


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read the files once so that no target pays for cold reads of the input."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


# --- processes, ports and tools ------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Block until something accepts connections on the port (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((LOCALHOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on port {port} after {timeout:.0f} s")


def dcmtk_tool(name: str) -> str:
    """The path of a DCMTK program (pynetdicom installs look-alikes earlier on PATH)."""
    candidates = [f"/usr/bin/{name}", f"/usr/local/bin/{name}", shutil.which(name) or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [candidate, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            if "dcmtk" in version.stdout.lower():
                return candidate
    raise BenchError(f"DCMTK {name} not found")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 1000:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kb(pids: Sequence[int]) -> dict[str, int]:
    """Summed VmRSS and VmHWM (peak RSS) of the processes, in kB."""
    totals = {"VmRSS": 0, "VmHWM": 0}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in totals:
                totals[key] += int(value.split()[0])
    return totals


def start_time(pid: int) -> str | None:
    """The start time of a process (field 22 of /proc/PID/stat), to recognise it later."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    """SIGTERM the process, SIGKILL it (and any child it left) when it does not stop.

    Returns whether SIGKILL was needed."""
    if process.poll() is not None:
        return False
    family = {pid: start_time(pid) for pid in descendants(process.pid)[1:]}
    killed = False
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
        killed = True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(still_running, family.items())):
        time.sleep(0.1)  # children usually follow their parent out on their own
    for pid, started in family.items():
        if still_running((pid, started)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed = True
    return killed


def still_running(process: tuple[int, str | None]) -> bool:
    """Whether the process (pid, start time) still runs (and is not a reused pid)."""
    pid, started = process
    return started is not None and start_time(pid) == started


def run_tools(
    commands: Sequence[list[str]], logs: Sequence[Path], cwd: Path, timeout: float
) -> float:
    """Run the commands concurrently; the wall-clock seconds until the last one ends."""
    processes: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    try:
        for command, log in zip(commands, logs, strict=True):
            with open(log, "wb") as handle:
                processes.append(
                    subprocess.Popen(
                        command, cwd=cwd, env=DCMTK_ENV, stdout=handle, stderr=subprocess.STDOUT
                    )
                )
        deadline = time.monotonic() + timeout
        for process in processes:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        elapsed = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        raise BenchError(f"{Path(commands[0][0]).name} ran past {timeout:.0f} s") from None
    finally:
        for process in processes:
            stop_process(process, timeout=5)
    for process, log in zip(processes, logs, strict=True):
        problems = tool_errors(log)
        if process.returncode != 0 or problems:
            detail = "; ".join(problems[:3]) or f"exit status {process.returncode}"
            raise BenchError(f"{Path(commands[0][0]).name} failed: {detail} (see {log.name})")
    return elapsed


def tool_errors(log: Path) -> list[str]:
    """The error lines (``E:`` and ``F:``) a DCMTK tool printed."""
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if line.startswith(("E: ", "F: "))]


# --- the servers -------------------------------------------------------------------------


@dataclass
class Server:
    """A running DICOM server under test (``port`` is its DICOM port)."""

    label: str
    ae_title: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    http_port: int = 0

    def pids(self) -> list[int]:
        return descendants(self.process.pid)

    def stop(self) -> dict[str, Any]:
        """Stop the server (SIGTERM); its exit status and whether SIGKILL was needed."""
        killed = stop_process(self.process)
        return {"exit_code": self.process.returncode, "killed": killed}


@dataclass(frozen=True)
class Target:
    """A kind of server: how to start one in a fresh folder, and how to read its log."""

    name: str
    start: Callable[[Path, int | None], Server]
    log_issue: Callable[[str], bool]
    version: str
    settings: dict[str, Any] = field(default_factory=dict)


def start_ours(
    folder: Path, scp_port: int | None, workers: int = 1, extra_config: str = ""
) -> Server:
    """``python -m pacs serve`` with a fresh data folder, SQLite, free ports; the DCMTK
    ``storescp`` at ``scp_port`` (if any) is its C-MOVE destination; ``extra_config`` is
    appended to the configuration (more tables)."""
    folder.mkdir(parents=True)
    port, http_port = free_port(), free_port()
    data_dir = folder / "data"
    config = folder / "pacs.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data_dir}"\nlog_level = "INFO"\n'
        f'[dimse]\nport = {port}\nhost = "{LOCALHOST}"\nae_title = "{OURS_AE}"\n'
        f"workers = {workers}\n"
        f'[http]\nport = {http_port}\nhost = "{LOCALHOST}"\n'
        + (
            f'[[modalities]]\nname = "bench-scp"\nae_title = "{SCP_AE}"\n'
            f'host = "{LOCALHOST}"\nport = {scp_port}\n'
            if scp_port
            else ""
        )
        + extra_config,
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    log = folder / "server.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "pacs", "--config", str(config), "serve"],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    server = _started(Server("ours", OURS_AE, port, process, log, data_dir, http_port))
    wait_for_workers(server, workers)
    return server


def wait_for_workers(server: Server, workers: int, timeout: float = 60.0) -> None:
    """Wait until every DIMSE worker process has logged its listener (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.log.read_text(errors="replace").count("DICOM listener") >= workers:
            return
        time.sleep(0.1)
    print(f"  (warning: fewer than {workers} DICOM listeners logged after {timeout:.0f} s)")


def ours_log_issue(line: str) -> bool:
    """A warning, error or traceback line of our server's log."""
    return any(word in line for word in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback"))


def start_orthanc(
    folder: Path, scp_port: int | None, plugins: Sequence[str] = (), **options: Any
) -> Server:
    """Orthanc with a temporary JSON configuration; every option not set keeps its default.

    ``plugins`` are shared-library paths to load; ``options`` are further top-level keys
    (a plugin's own section, for instance)."""
    folder.mkdir(parents=True)
    port, http_port = free_port(), free_port()
    data_dir = folder / "data"
    config = {
        "Name": "bench",
        "StorageDirectory": str(data_dir / "storage"),
        "IndexDirectory": str(data_dir / "index"),
        "DicomAet": ORTHANC_AE,
        "DicomPort": port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomModalities": {"benchscp": [SCP_AE, LOCALHOST, scp_port]} if scp_port else {},
        "Plugins": list(plugins),
        **options,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    log = folder / "server.log"
    with open(log, "wb") as handle:
        # Orthanc's DICOM sockets are DCMTK's: give it the same TCP_NODELAY as the tools.
        process = subprocess.Popen(
            ["Orthanc", str(path)],
            cwd=folder,
            env=DCMTK_ENV,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return _started(Server("orthanc", ORTHANC_AE, port, process, log, data_dir, http_port))


def orthanc_log_issue(line: str) -> bool:
    """An error line of Orthanc's log (``E1122 ...``); its W lines are ordinary messages."""
    return re.match(r"^[EF]\d{4} ", line) is not None


def orthanc_version() -> str:
    """``Orthanc 1.10.1`` or '' when Orthanc is not installed."""
    if shutil.which("Orthanc") is None:
        return ""
    result = subprocess.run(
        ["Orthanc", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.splitlines()[0].strip() if result.stdout else "Orthanc (unknown)"


ORTHANC_DIMSE_KEYS = (
    "TcpNoDelay",
    "KeepAlive",
    "DicomThreadsCount",
    "SyncStorageArea",
    "StorageCompression",
    "MaximumPduLength",
    "StorageAccessOnFind",
    "OverwriteInstances",
    "LimitFindResults",
    "MaximumStorageCacheSize",
)


def orthanc_defaults(keys: Sequence[str] = ORTHANC_DIMSE_KEYS) -> dict[str, Any]:
    """Orthanc's own defaults of the options ``keys`` (read from ``Orthanc --config``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default.json"
        subprocess.run(
            ["Orthanc", f"--config={path}"], capture_output=True, timeout=30, check=False
        )
        text = path.read_text() if path.exists() else ""
    found: dict[str, Any] = {}
    for key in keys:
        match = re.search(rf'^\s*"{key}"\s*:\s*([^,\n]+)', text, re.MULTILINE)
        if match:
            found[key] = json.loads(match.group(1).strip())
    return found


def _started(server: Server) -> Server:
    """Wait until the server listens and answers C-ECHO; stop it when it does not."""
    try:
        wait_for_port(server.port, server.process)
        deadline = time.monotonic() + 30
        while not echo(server):
            if time.monotonic() > deadline:
                raise BenchError("no answer to C-ECHO")
            time.sleep(0.2)
    except Exception:
        server.stop()
        tail = server.log.read_text(errors="replace")[-2000:]
        raise BenchError(f"{server.label} did not start:\n{tail}") from None
    return server


@contextlib.contextmanager
def association(server: Server, *contexts: str) -> Iterator[Association]:
    """A pynetdicom association with TCP_NODELAY on its socket, released afterwards."""
    ae = AE(ae_title=CALLING_AE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    for context in contexts:
        ae.add_requested_context(context)
    assoc = ae.associate(LOCALHOST, server.port, ae_title=server.ae_title)
    try:
        if not assoc.is_established:
            raise BenchError(f"association to {server.label} refused or failed")
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def echo(server: Server) -> bool:
    """Whether the server answers C-ECHO with Success."""
    try:
        with association(server, Verification) as assoc:
            status = assoc.send_c_echo()
            return bool(status) and status.Status == 0
    except BenchError:
        return False


# --- measurements ------------------------------------------------------------------------


def rate(count: int, size: int, seconds: float) -> dict[str, float]:
    """Instances/s and MB/s."""
    return {
        "seconds": round(seconds, 3),
        "instances_per_s": round(count / seconds, 2),
        "mb_per_s": round(size / MB / seconds, 2),
    }


def store(server: Server, dataset: DataSet, associations: int, logs: Path) -> dict[str, Any]:
    """Send the set with ``associations`` concurrent storescu processes (contiguous shares)."""
    storescu = dcmtk_tool("storescu")
    names = dataset.names
    share = -(-len(names) // associations)
    chunks = [names[i : i + share] for i in range(0, len(names), share)]
    commands = [
        [storescu, "-aet", CALLING_AE, "-aec", server.ae_title, LOCALHOST, str(server.port), *chunk]
        for chunk in chunks
    ]
    tag = f"{server.label}-{dataset.name}-{associations}"
    tool_logs = [logs / f"storescu-{tag}-{n}.log" for n in range(len(commands))]
    size = dataset.total_bytes
    timeout = 120 + len(names) * 0.05 + size / MB
    seconds = run_tools(commands, tool_logs, dataset.folder, timeout)
    result: dict[str, Any] = {
        "instances": len(names),
        "mb": round(size / MB, 1),
        "associations": len(commands),
        **rate(len(names), size, seconds),
    }
    return result


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95, mean and max of latencies in seconds, as milliseconds."""
    values = np.asarray(samples) * 1000.0
    return {
        "runs": len(samples),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
        "max_ms": round(float(values.max()), 2),
    }


def attempt(
    results: dict[str, Any],
    key: str,
    measure: Callable[[], Any],
    errors: tuple[type[Exception], ...] = (BenchError,),
) -> None:
    """Run one measurement; a failure (one of ``errors``) is recorded and reported, and the
    run goes on."""
    print(f"  {key} ...", end=" ", flush=True)
    started = time.monotonic()
    try:
        results[key] = measure()
        print(f"done ({time.monotonic() - started:.1f} s)", flush=True)
    except errors as exc:
        results[key] = {"error": str(exc) or type(exc).__name__}
        print(f"FAILED: {results[key]['error']}", flush=True)


def log_summary(log: Path, is_issue: Callable[[str], bool], stop: dict[str, Any]) -> dict[str, Any]:
    """How the server stopped, and how many warning/error lines it logged (the first ones)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    issues = [line for line in lines if is_issue(line)]
    return {**stop, "lines": len(lines), "issues": len(issues), "first_issues": issues[:20]}


# --- report ------------------------------------------------------------------------------


def value_at(results: dict[str, Any], path: str) -> float | None:
    """``results["a"]["b"]`` for the path ``a.b``; None when missing or failed."""
    current: Any = results
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return float(current) if isinstance(current, int | float) else None


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


# (label, unit, path of the figure in a target's results) of one line of the table
Row = tuple[str, str, str]


def render_table(rows: Sequence[Row], targets: dict[str, dict[str, Any]]) -> str:
    """The readable table: our figure, Orthanc's, and the ratio ours/Orthanc."""
    ours, orthanc = targets.get("ours", {}), targets.get("orthanc")
    width = max([46, *(len(label) for label, _, _ in rows)])
    header = f"{'measurement':<{width}} {'unit':<8} {'ours':>10}"
    if orthanc is not None:
        header += f" {'orthanc':>10} {'ours/orth':>10}"
    lines = [header, "-" * len(header)]
    for label, unit, path in rows:
        mine = value_at(ours, path)
        line = f"{label:<{width}} {unit:<8} {format_number(mine):>10}"
        if orthanc is not None:
            theirs = value_at(orthanc, path)
            ratio = f"{mine / theirs:.2f}" if mine is not None and theirs else "-"
            line += f" {format_number(theirs):>10} {ratio:>10}"
        lines.append(line)
    lines.append("inst/s, MB/s and /s: higher is better; ms and MB: lower is better.")
    for name, results in targets.items():
        for key, value in results.items():
            if isinstance(value, dict) and "error" in value:
                lines.append(f"{name} {key}: FAILED: {value['error']}")
        for phase in (key for key in results if key.startswith("log_")):
            summary = results[phase]
            if summary.get("exit_code") not in (None, 0) or summary.get("killed"):
                lines.append(
                    f"{name} {phase}: server exit status {summary.get('exit_code')} after "
                    f"SIGTERM{' (needed SIGKILL)' if summary.get('killed') else ''}"
                )
            if summary.get("issues"):
                lines.append(
                    f"{name} {phase}: {summary['issues']} warning/error line(s), "
                    f"first: {summary['first_issues'][0]}"
                )
    return "\n".join(lines)


def ratios(targets: dict[str, dict[str, Any]], rows: Sequence[Row]) -> dict[str, float]:
    """ours/Orthanc for each table line both have."""
    found: dict[str, float] = {}
    if "orthanc" not in targets:
        return found
    for _, _, path in rows:
        mine, theirs = value_at(targets["ours"], path), value_at(targets["orthanc"], path)
        if mine is not None and theirs:
            found[path] = round(mine / theirs, 3)
    return found


def machine_info(orthanc: str) -> dict[str, Any]:
    """CPU, memory, and the versions of everything that takes part."""
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"^MemTotal:\s*(\d+)", meminfo, re.MULTILINE)
    try:
        storescu: list[str] | None = _output([dcmtk_tool("storescu"), "--version"]).splitlines()
    except BenchError:  # no DCMTK (e.g. bench_ai_pipeline.py --no-ingest): recorded as None
        storescu = None
    commit = _output(["git", "rev-parse", "--short", "HEAD"]).strip()
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"]).splitlines()
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_cores": os.cpu_count(),
        "memory_gb": round(int(total.group(1)) / 1024**2, 1) if total else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "pynetdicom": pynetdicom.__version__,
        "numpy": np.__version__,
        "dcmtk": None if storescu is None else (storescu[0].strip("$ ") if storescu else ""),
        "orthanc": orthanc or None,
        "git_commit": commit or None,
        "git_dirty_files": dirty,
    }


def _output(command: list[str]) -> str:
    """What the command prints (run in the repository, at most 30 s)."""
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    ).stdout


def keep_logs(scratch: Path, destination: Path) -> None:
    """Copy the server and tool logs out of the scratch folder before it is removed."""
    for log in scratch.rglob("*.log"):
        target = destination / log.relative_to(scratch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
