"""Helpers for the end-to-end tests: DCMTK tools, pynetdicom SCUs, raw DIMSE messages."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    build_role,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.conftest import RunningServer, free_port, start_server

HOST = "127.0.0.1"
SERVER_AE = "PACS"
SCU_AE = "E2E-SCU"
TIMEOUT = 60

PATIENT_ROOT_FIND = PatientRootQueryRetrieveInformationModelFind
STUDY_ROOT_FIND = StudyRootQueryRetrieveInformationModelFind
STUDY_ROOT_MOVE = StudyRootQueryRetrieveInformationModelMove
STUDY_ROOT_GET = StudyRootQueryRetrieveInformationModelGet

UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]


# --- DCMTK -----------------------------------------------------------------------------------


def _is_binary(path: Path) -> bool:
    """Whether the file is a compiled program (not a Python console script of the same name)."""
    try:
        with open(path, "rb") as handle:
            return not handle.read(2).startswith(b"#!")
    except OSError:
        return False


def dcmtk_tool(name: str) -> str | None:
    """The DCMTK program of that name on PATH, skipping pynetdicom's apps of the same name
    (``pip install pynetdicom`` puts Python ``storescu``, ``findscu``... on PATH too)."""
    if shutil.which(name) is None:
        return None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and _is_binary(candidate):
            return str(candidate)
    return None


def require_dcmtk(*names: str) -> dict[str, str]:
    """Paths of the DCMTK programs, or skip the test when one is missing."""
    if shutil.which("storescu") is None:
        pytest.skip("DCMTK is not installed (no storescu on PATH)")
    found: dict[str, str] = {}
    for name in names:
        path = dcmtk_tool(name)
        if path is None:
            pytest.skip(f"DCMTK {name} is not installed")
        found[name] = path
    return found


def run(args: Sequence[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a program with a timeout; output captured as text."""
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, errors="replace"
    )


def getscu_command(getscu: str, out: Path, *options: str, aet: str = "E2E-GETSCU") -> list[str]:
    """A DCMTK getscu command line (study root, debug output, files into ``out``) before
    host and port; ``options`` are its keys and transfer-syntax flags."""
    return [
        getscu,
        "-d",
        "-S",
        "-aet",
        aet,
        "-aec",
        SERVER_AE,
        "-to",
        "20",
        "-od",
        str(out),
        *options,
    ]


def study_keys(study_uid: str) -> list[str]:
    """The getscu/movescu keys retrieving one study."""
    return ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]


def dataset_bytes(path: Path) -> bytes:
    """The data set bytes of a Part 10 file: everything after the File Meta group."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM", f"{path} is not a Part 10 file"
    tag = raw[132:136]
    assert tag == b"\x02\x00\x00\x00", "File Meta group without a group length"
    (group_length,) = struct.unpack("<I", raw[140:144])
    return raw[144 + group_length :]


def read_responses(folder: Path) -> list[Dataset]:
    """The ``rspNNNN.dcm`` files findscu ``-X`` wrote, in order."""
    return [dcmread(path) for path in sorted(folder.glob("rsp*.dcm"))]


def findscu(
    tool: str,
    port: int,
    keys: dict[str, str],
    out: Path,
    model: str = "-S",
    calling_ae: str = "FINDSCU",
) -> tuple[subprocess.CompletedProcess[str], list[Dataset]]:
    """Run DCMTK findscu with ``-k`` keys, extracting responses into a fresh folder."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    args = [tool, "-v", model, "-aet", calling_ae, "-aec", SERVER_AE, "-to", "20", "-X"]
    args += ["-od", str(out)]
    for keyword, value in keys.items():
        args += ["-k", f"{keyword}={value}" if value else keyword]
    result = run([*args, HOST, str(port)])
    return result, read_responses(out)


def final_counts(debug_output: str) -> dict[str, int]:
    """Sub-operation counts of the final response in movescu/getscu ``-d`` output."""
    text = debug_output
    marker = text.rfind("Final")
    tail = text[marker:] if marker >= 0 else text
    counts: dict[str, int] = {}
    for line in tail.splitlines():
        for name in ("Remaining", "Completed", "Failed", "Warning"):
            if f"{name} Suboperations" in line and ":" in line:
                with contextlib.suppress(ValueError):
                    counts.setdefault(name, int(line.rsplit(":", 1)[1].strip()))
    return counts


# --- pynetdicom SCU ----------------------------------------------------------------------------


def make_ae(ae_title: str = SCU_AE) -> AE:
    """A pynetdicom AE with short timeouts."""
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = 20
    ae.dimse_timeout = 60
    ae.network_timeout = 60
    return ae


@contextlib.contextmanager
def association(
    port: int,
    contexts: Iterable[tuple[str, Sequence[str]]] = (),
    ae_title: str = SCU_AE,
    ext_neg: list[Any] | None = None,
    evt_handlers: list[Any] | None = None,
) -> Iterator[Association]:
    """An established association to the server, released (or aborted) afterwards."""
    ae = make_ae(ae_title)
    ae.add_requested_context(Verification)
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, list(syntaxes))
    assoc = ae.associate(HOST, port, ae_title=SERVER_AE, ext_neg=ext_neg, evt_handlers=evt_handlers)
    assert assoc.is_established, f"association to port {port} was not established"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        if not assoc.is_released:
            assoc.abort()
        ae.shutdown()


def echo_ok(port: int, ae_title: str = SCU_AE) -> bool:
    """Whether the server answers a C-ECHO with Success."""
    ae = make_ae(ae_title)
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, port, ae_title=SERVER_AE)
    try:
        if not assoc.is_established:
            return False
        answer = assoc.send_c_echo()
        return bool(answer) and int(answer.Status) == 0
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def transfer_syntax_of(ds: Dataset) -> str:
    """The data set's transfer syntax (from its File Meta)."""
    return str(ds.file_meta.TransferSyntaxUID)


def store(port: int, datasets: Sequence[Dataset], ae_title: str = SCU_AE) -> list[int]:
    """C-STORE each data set on one association; their statuses (-1 when none came back)."""
    contexts = sorted({(str(ds.SOPClassUID), transfer_syntax_of(ds)) for ds in datasets})
    wanted: dict[str, list[str]] = {}
    for sop_class, syntax in contexts:
        wanted.setdefault(sop_class, [])
        if syntax not in wanted[sop_class]:
            wanted[sop_class].append(syntax)
    statuses = []
    with association(port, wanted.items(), ae_title=ae_title) as assoc:
        for ds in datasets:
            answer = assoc.send_c_store(ds)
            statuses.append(int(answer.Status) if "Status" in answer else -1)
    return statuses


def find(
    port: int,
    identifier: Dataset,
    model: str = STUDY_ROOT_FIND,
    ae_title: str = SCU_AE,
) -> tuple[int, list[Dataset]]:
    """A C-FIND: the final status and the identifiers of the pending responses."""
    results: list[Dataset] = []
    final = -1
    with association(port, [(model, UNCOMPRESSED)], ae_title=ae_title) as assoc:
        for status, answer in assoc.send_c_find(identifier, model):
            if "Status" not in status:
                break
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                assert answer is not None
                results.append(answer)
            else:
                final = code
    return final, results


def query(level: str, **keys: str) -> Dataset:
    """A query identifier: the level and the given keys ('' = return key)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def image_uids(port: int, **keys: str) -> set[str]:
    """The SOP Instance UIDs an IMAGE-level C-FIND returns."""
    identifier = query("IMAGE", SOPInstanceUID=keys.pop("SOPInstanceUID", ""), **keys)
    final, results = find(port, identifier)
    assert final == 0, f"C-FIND failed with 0x{final:04X}"
    return {str(r.SOPInstanceUID) for r in results}


def send_raw_store(
    assoc: Association,
    sop_class: str,
    sop_uid: str,
    payload: bytes,
    transfer_syntax: str = str(ExplicitVRLittleEndian),
    msg_id: int = 1,
) -> Dataset:
    """A C-STORE whose data set is ``payload`` as is (pynetdicom neither encodes nor checks)."""
    context = assoc._get_valid_context(UID(sop_class), UID(transfer_syntax), "scu")
    request = C_STORE()
    request.MessageID = msg_id
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_uid
    request.Priority = 2
    request.DataSet = BytesIO(payload)
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, int(context.context_id or 0))
        _, response = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    if response is None:
        return Dataset()
    return assoc._check_received_status(response)


def send_raw_find(
    assoc: Association, payload: bytes, model: str = STUDY_ROOT_FIND
) -> list[tuple[Dataset, Dataset | None]]:
    """A C-FIND whose identifier is ``payload`` as is; every (status, identifier) answer."""
    context = assoc._get_valid_context(UID(model), "", "scu")
    request = C_FIND()
    request.MessageID = 1
    request.AffectedSOPClassUID = model
    request.Priority = 2
    request.Identifier = BytesIO(payload)
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    assoc.dimse.send_msg(request, int(context.context_id or 0))
    return list(assoc._wrap_find_responses(context.transfer_syntax[0], UID(model)))


def final_and_pending(
    responses: Iterator[tuple[Dataset, Dataset | None]],
) -> tuple[Dataset, Dataset | None, list[Dataset]]:
    """The final response (status, identifier) and the pending statuses before it."""
    pending: list[Dataset] = []
    for status, identifier in responses:
        assert "Status" in status, "no response (timeout or abort)"
        if int(status.Status) in (0xFF00, 0xFF01):
            pending.append(status)
            continue
        return status, identifier, pending
    raise AssertionError("no final response")


def c_get(
    port: int, identifier: Dataset, sop_classes: list[str], syntaxes: list[str]
) -> tuple[Dataset, Dataset | None, dict[str, Dataset]]:
    """A C-GET receiving on the same association; final status, identifier, what came."""
    got: dict[str, Dataset] = {}

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        got[str(ds.SOPInstanceUID)] = ds
        return 0x0000

    contexts = [(STUDY_ROOT_GET, UNCOMPRESSED)] + [(sc, syntaxes) for sc in sop_classes]
    roles = [build_role(sc, scp_role=True) for sc in sop_classes]
    with association(
        port, contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    ) as assoc:
        final, ident, _ = final_and_pending(assoc.send_c_get(identifier, STUDY_ROOT_GET))
    return final, ident, got


# --- a storage SCP to receive C-MOVE sub-operations ------------------------------------------


@dataclass
class Receiver:
    """A pynetdicom storage SCP collecting what it receives, keyed by SOP Instance UID."""

    ae_title: str
    port: int = field(default_factory=free_port)
    received: dict[str, Dataset] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self._lock:
            self.received[str(ds.SOPInstanceUID)] = ds
            self.raw[str(ds.SOPInstanceUID)] = event.encoded_dataset(include_meta=False)
        return 0x0000

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        """Listen on 127.0.0.1:port while the block runs."""
        ae = make_ae(self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        server = ae.start_server(
            (HOST, self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self.handle_store)],
        )
        try:
            yield self
        finally:
            if server is not None:
                server.shutdown()
            ae.shutdown()


def modality_config(name: str, ae_title: str, port: int) -> str:
    """A ``[[modalities]]`` TOML entry on 127.0.0.1."""
    return f'[[modalities]]\nname = "{name}"\nae_title = "{ae_title}"\nhost = "{HOST}"\nport = {port}\n'


def raw_connect(port: int, payload: bytes, linger: float = 0.2) -> None:
    """Open a TCP connection, send ``payload``, wait a moment and disappear."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        if payload:
            sock.sendall(payload)
        time.sleep(linger)


def blob_of(data_dir: Path, sop_uid: str) -> Path:
    """The blob file under ``<data_dir>/blobs`` that holds this SOP instance."""
    for path in (data_dir / "blobs").rglob("*"):
        if not path.is_file():
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            continue
        if str(ds.get("SOPInstanceUID", "")) == sop_uid:
            return path
    raise FileNotFoundError(f"no blob holds {sop_uid}")


@contextlib.contextmanager
def serve(
    factory: pytest.TempPathFactory,
    name: str,
    extra_config: str = "",
    dimse_options: str = "",
    index_url: str = "",
) -> Iterator[RunningServer]:
    """A ``pacs serve`` process in a fresh temporary folder, stopped afterwards."""
    folder = factory.mktemp(name)
    running = start_server(
        folder, extra_config, index_url=index_url, name=name, dimse_options=dimse_options
    )
    try:
        yield running
    finally:
        running.stop()


def assert_alive(server: RunningServer) -> None:
    """The server process still runs and answers C-ECHO."""
    assert server.process.poll() is None, f"server exited:\n{server.log_text()[-3000:]}"
    assert echo_ok(server.dimse_port), f"no C-ECHO answer:\n{server.log_text()[-3000:]}"


# --- raw upper-layer PDUs ---------------------------------------------------------------------


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def associate_rq(
    abstract_syntax: str = str(Verification),
    transfer_syntax: str = str(ImplicitVRLittleEndian),
    calling_ae: str = "E2E-RAW",
    called_ae: str = SERVER_AE,
) -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing one presentation context."""
    body = struct.pack(">HH", 1, 0)
    body += called_ae.ljust(16).encode("ascii") + calling_ae.ljust(16).encode("ascii")
    body += b"\x00" * 32
    body += _item(0x10, b"1.2.840.10008.3.1.1.1")
    context = bytes([1, 0, 0, 0]) + _item(0x30, abstract_syntax.encode("ascii"))
    context += _item(0x40, transfer_syntax.encode("ascii"))
    body += _item(0x20, context)
    user = _item(0x51, struct.pack(">I", 16384)) + _item(0x52, b"1.2.826.0.1.3680043.10.1137.9")
    body += _item(0x50, user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def recv_pdu_type(sock: socket.socket, timeout: float = 10.0) -> int | None:
    """The type byte of the next PDU the peer sends (None when it closed the connection)."""
    sock.settimeout(timeout)
    header = b""
    while len(header) < 6:
        chunk = sock.recv(6 - len(header))
        if not chunk:
            return None
        header += chunk
    (length,) = struct.unpack(">I", header[2:6])
    remaining = length
    while remaining:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)
    return header[0]
