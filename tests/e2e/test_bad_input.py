"""Hostile and broken input: each is refused properly and the node keeps serving."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from tests.conftest import RunningServer
from tests.e2e.helpers import (
    HOST,
    STUDY_ROOT_FIND,
    UNCOMPRESSED,
    assert_alive,
    associate_rq,
    association,
    echo_ok,
    image_uids,
    raw_connect,
    recv_pdu_type,
    require_dcmtk,
    run,
    send_raw_find,
    send_raw_store,
    serve,
    store,
)
from tests.factories import make_image, new_uid, to_bytes, write

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module's abuse."""
    with serve(tmp_path_factory, "bad") as running:
        yield running


def is_failure(code: int) -> bool:
    """A C-STORE failure status (PS3.4 B.2.3, PS3.7 C): 01xx, A7xx, A9xx, Cxxx."""
    return (code & 0xF000) in (0xA000, 0xC000) or (code & 0xFF00) == 0x0100


def still_serving(node: RunningServer) -> None:
    """The process runs, answers C-ECHO, and stores and finds a good instance."""
    assert_alive(node)
    good = make_image(patient_id="GOOD-AFTER")
    assert store(node.dimse_port, [good]) == [0]
    assert str(good.SOPInstanceUID) in image_uids(node.dimse_port, PatientID="GOOD-AFTER")


def _status(answer: Dataset) -> int:
    assert "Status" in answer, "no C-STORE response (association aborted?)"
    return int(answer.Status)


def test_dataset_without_sop_instance_uid(node: RunningServer) -> None:
    """The request names a SOP Instance UID, the data set has none: 0xC000-range failure."""
    ds = make_image(patient_id="BAD-NOSOP")
    uid = str(ds.SOPInstanceUID)
    del ds.SOPInstanceUID
    with association(node.dimse_port, [(CT, [EXPLICIT])]) as assoc:
        code = _status(send_raw_store(assoc, CT, uid, dataset_bytes_of(ds)))
    assert code & 0xF000 == 0xC000, f"0x{code:04X}"
    assert image_uids(node.dimse_port, PatientID="BAD-NOSOP") == set()
    still_serving(node)


def test_dataset_without_study_instance_uid(node: RunningServer) -> None:
    """A data set with no StudyInstanceUID: 0xC000-range failure, nothing indexed."""
    ds = make_image(patient_id="BAD-NOSTUDY")
    del ds.StudyInstanceUID
    code = store(node.dimse_port, [ds])[0]
    assert code & 0xF000 == 0xC000, f"0x{code:04X}"
    assert image_uids(node.dimse_port, PatientID="BAD-NOSTUDY") == set()
    still_serving(node)


def test_request_and_dataset_sop_instance_uid_differ(node: RunningServer) -> None:
    """The C-STORE request's Affected SOP Instance UID differs from the data set's: refused
    (0xA900 'data set does not match', or another failure), and filed under neither UID."""
    ds = make_image(patient_id="BAD-MISMATCH")
    claimed = new_uid()
    with association(node.dimse_port, [(CT, [EXPLICIT])]) as assoc:
        code = _status(send_raw_store(assoc, CT, claimed, dataset_bytes_of(ds)))
    assert is_failure(code), f"a mismatching data set was acknowledged with 0x{code:04X}"
    assert image_uids(node.dimse_port, PatientID="BAD-MISMATCH") == set()
    still_serving(node)


def test_absurd_image_size_is_refused(node: RunningServer) -> None:
    """Declared 65535 x 65535 x 10 frames (43 G samples): refused, nothing indexed."""
    ds = make_image(patient_id="BAD-HUGE", rows=4, columns=4)
    ds.Rows = 65535
    ds.Columns = 65535
    ds.NumberOfFrames = 10
    code = store(node.dimse_port, [ds])[0]
    assert is_failure(code), f"0x{code:04X}"
    assert image_uids(node.dimse_port, PatientID="BAD-HUGE") == set()
    still_serving(node)


def dataset_bytes_of(ds: Dataset) -> bytes:
    """The data set encoding of ``ds`` (no preamble, no File Meta)."""
    raw = to_bytes(ds)
    (group_length,) = struct.unpack("<I", raw[140:144])
    return raw[144 + group_length :]


@pytest.mark.integration
def test_truncated_file_with_storescu(node: RunningServer, tmp_path: Path) -> None:
    """storescu given a truncated Part 10 file: whatever storescu does, nothing half-stored."""
    storescu = require_dcmtk("storescu")["storescu"]
    ds = make_image(patient_id="BAD-TRUNC-FILE", rows=64, columns=64)
    path = write(ds, tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 3000])
    result = run([storescu, "-aec", "PACS", "-to", "20", HOST, str(node.dimse_port), str(path)])
    if "Received Store Response (Success)" not in result.stderr:
        assert image_uids(node.dimse_port, PatientID="BAD-TRUNC-FILE") == set()
    still_serving(node)


@pytest.mark.parametrize("cut", ["in-pixel-data", "in-header"])
def test_truncated_dataset_is_refused(node: RunningServer, cut: str) -> None:
    """A data set cut short (Pixel Data shorter than its declared length, or cut inside the
    header) is not acknowledged as stored: a failure status, and nothing indexed."""
    patient = f"BAD-TRUNC-{cut}"
    ds = make_image(patient_id=patient, rows=64, columns=64)
    body = dataset_bytes_of(ds)
    payload = body[:-3000] if cut == "in-pixel-data" else body[:300]
    with association(node.dimse_port, [(CT, [EXPLICIT])]) as assoc:
        code = _status(send_raw_store(assoc, CT, str(ds.SOPInstanceUID), payload))
    assert is_failure(code), f"truncated data set acknowledged with 0x{code:04X}"
    assert image_uids(node.dimse_port, PatientID=patient) == set()
    still_serving(node)


def test_garbage_dataset(node: RunningServer) -> None:
    """Random bytes as a data set: a failure status, not an abort."""
    with association(node.dimse_port, [(CT, [EXPLICIT])]) as assoc:
        code = _status(send_raw_store(assoc, CT, new_uid(), bytes(range(256)) * 8))
        assert is_failure(code), f"0x{code:04X}"
        assert int(assoc.send_c_echo().Status) == 0
    still_serving(node)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(associate_rq()[:40], id="half-associate-rq"),
        pytest.param(b"\x01\x00\xff\xff\xff\xf0" + b"\x00" * 64, id="huge-pdu-length"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00" * 3, id="unexpected-abort"),
    ],
)
def test_broken_peer_disappears(node: RunningServer, payload: bytes) -> None:
    """A peer sends a partial or nonsensical PDU and disconnects: the node keeps serving."""
    raw_connect(node.dimse_port, payload)
    still_serving(node)


def test_half_p_data_then_disconnect(node: RunningServer) -> None:
    """A peer associates properly, sends half a P-DATA-TF and disappears."""
    with socket.create_connection((HOST, node.dimse_port), timeout=10) as sock:
        sock.sendall(associate_rq())
        assert recv_pdu_type(sock) == 0x02, "A-ASSOCIATE-AC expected"
        # P-DATA-TF declaring 1000 bytes, of which 30 are sent.
        sock.sendall(
            b"\x04\x00"
            + struct.pack(">I", 1000)
            + struct.pack(">I", 996)
            + b"\x01\x03"
            + b"\x00" * 24
        )
        time.sleep(0.2)
    still_serving(node)


def test_stalled_peer_does_not_block_others(node: RunningServer) -> None:
    """While one peer holds half an A-ASSOCIATE-RQ open, others are served."""
    with socket.create_connection((HOST, node.dimse_port), timeout=10) as sock:
        sock.sendall(associate_rq()[:30])
        started = time.monotonic()
        assert echo_ok(node.dimse_port)
        assert time.monotonic() - started < 10
        still_serving(node)


@pytest.mark.parametrize(
    ("identifier", "must_fail"),
    [
        pytest.param(
            b"\x08\x00\x52\x00CS\x06\x00STUDY "
            + b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff"
            + b"\xfe\xff\x00\xe0\x10\x00\x00\x00\x10\x00",
            True,
            id="broken-sequence",
        ),
        pytest.param(bytes(range(256)) * 4, True, id="random-bytes"),
        pytest.param(
            b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192\x08\x00\x52\x00CS\x06\x00STUDY "
            b"\x10\x00\x10\x00PN\x04\x00\xc3\x28\xff\xfe",
            False,
            id="invalid-utf8-name",
        ),
        pytest.param(
            b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 999\x08\x00\x52\x00CS\x06\x00STUDY "
            b"\x10\x00\x10\x00PN\x04\x00\xc3\xa9\xff\xfe",
            False,
            id="unknown-charset",
        ),
    ],
)
def test_c_find_with_undecodable_identifier(
    node: RunningServer, identifier: bytes, must_fail: bool
) -> None:
    """A C-FIND whose identifier cannot be decoded: one final response (a failure where the
    identifier is unusable), the association still works, and the node keeps serving."""
    with association(node.dimse_port, [(STUDY_ROOT_FIND, UNCOMPRESSED)]) as assoc:
        responses = send_raw_find(assoc, identifier)
        statuses = [int(status.Status) for status, _ in responses if "Status" in status]
        assert statuses, "no C-FIND response"
        final = statuses[-1]
        assert final not in (0xFF00, 0xFF01)
        if must_fail:
            assert final in (0xA900,) or final & 0xF000 == 0xC000, f"0x{final:04X}"
            assert statuses == [final]
        else:
            assert final == 0 or final == 0xA900 or final & 0xF000 == 0xC000
        assert int(assoc.send_c_echo().Status) == 0
    still_serving(node)
