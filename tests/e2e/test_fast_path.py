"""The lean DIMSE acceptor and its hand-over to pynetdicom.

Associations that only echo, store, find, move or get are served by
``pacs.dimse.fast_acceptor``; any other by pynetdicom (and every one with
``fast_store = false``). Both paths must store the same way, and the fast path must
survive protocol abuse.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.dsutils import encode

from tests.conftest import RunningServer
from tests.e2e.helpers import (
    HOST,
    STUDY_ROOT_FIND,
    UNCOMPRESSED,
    assert_alive,
    associate_rq,
    association,
    blob_of,
    image_uids,
    query,
    recv_pdu_type,
    serve,
    store,
)
from tests.factories import make_series, to_bytes

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(scope="module", params=["fast", "pynetdicom"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server with the fast path on, one with it off."""
    options = "fast_store = true" if request.param == "fast" else "fast_store = false"
    with serve(tmp_path_factory, f"fp-{request.param}", dimse_options=options) as running:
        yield running


def test_both_paths_keep_the_data_set_bytes(node: RunningServer) -> None:
    series = make_series(3, rows=32, columns=32)
    assert store(node.dimse_port, series) == [0, 0, 0]
    assert image_uids(node.dimse_port, SeriesInstanceUID=str(series[0].SeriesInstanceUID)) == {
        str(ds.SOPInstanceUID) for ds in series
    }
    for ds in series:
        sent = to_bytes(ds)
        kept = blob_of(node.data_dir, str(ds.SOPInstanceUID)).read_bytes()
        sent_data_set = sent[132 + 12 + int.from_bytes(sent[140:144], "little") :]
        assert kept.endswith(sent_data_set)
        assert b"PACS_010" in kept[:400] or b"PYNETDICOM" in kept[:400]


def test_mixed_association_is_served_by_pynetdicom(node: RunningServer) -> None:
    """Proposing storage and C-FIND together: one association stores and then queries."""
    series = make_series(2)
    contexts = [(CT, [str(ExplicitVRLittleEndian)]), (STUDY_ROOT_FIND, UNCOMPRESSED)]
    with association(node.dimse_port, contexts) as assoc:
        for ds in series:
            assert int(assoc.send_c_store(ds).Status) == 0
        answers = [
            answer
            for status, answer in assoc.send_c_find(
                query(
                    "IMAGE", SeriesInstanceUID=str(series[0].SeriesInstanceUID), SOPInstanceUID=""
                ),
                STUDY_ROOT_FIND,
            )
            if status and int(status.Status) == 0xFF00
        ]
    assert len(answers) == 2


def _established(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(associate_rq(abstract_syntax=CT))
    assert recv_pdu_type(sock) == 0x02  # A-ASSOCIATE-AC
    return sock


def _p_data(context_id: int, control: int, payload: bytes) -> bytes:
    item = struct.pack(">IBB", len(payload) + 2, context_id, control) + payload
    return struct.pack(">BBI", 0x04, 0, len(item)) + item


@pytest.mark.parametrize(
    "abuse",
    [
        _p_data(9, 0x03, b"\x00" * 8),  # a presentation context that was never accepted
        _p_data(1, 0x02, b"\x00" * 8),  # a data set with no command before it
        _p_data(1, 0x03, b"\x00\x00\x00\x01\x02\x00\x00\x00"),  # a command set without fields
        struct.pack(">BBI", 0x09, 0, 4) + b"\x00" * 4,  # an unknown PDU type
        struct.pack(">BBI", 0x04, 0, 0x7FFFFFFF),  # an absurd PDU length
    ],
    ids=["unknown-context", "orphan-data", "empty-command", "unknown-pdu", "huge-pdu"],
)
def test_protocol_abuse_is_aborted(node: RunningServer, abuse: bytes) -> None:
    pynetdicom_waits = "fast_store = false" in node.config.read_text() and len(abuse) == 6
    with _established(node.dimse_port) as sock:
        sock.sendall(abuse)
        if pynetdicom_waits:  # pynetdicom waits for the body until its network timeout
            assert_alive(node)
            return
        assert recv_pdu_type(sock) in (0x07, None)  # A-ABORT, or the connection closed
    assert_alive(node)


def test_association_limit_rejects_transiently(tmp_path_factory: pytest.TempPathFactory) -> None:
    with serve(tmp_path_factory, "limit", dimse_options="max_associations = 2") as limited:
        first, second = _established(limited.dimse_port), _established(limited.dimse_port)
        try:
            with socket.create_connection((HOST, limited.dimse_port), timeout=10) as third:
                third.sendall(associate_rq(abstract_syntax=CT))
                assert recv_pdu_type(third) in (0x03, None)  # A-ASSOCIATE-RJ
        finally:
            first.close()
            second.close()


def _store_command(sop_uid: str) -> bytes:
    command = Dataset()
    command.AffectedSOPClassUID = CT
    command.CommandField = 0x0001
    command.MessageID = 7
    command.Priority = 0
    command.CommandDataSetType = 0x0000
    command.AffectedSOPInstanceUID = sop_uid
    body = encode(command, True, True)
    assert body is not None
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def test_peer_vanishing_mid_data_set_stores_nothing(node: RunningServer) -> None:
    kept, lost = make_series(2)
    assert store(node.dimse_port, [kept]) == [0]
    data_set = encode(lost, True, True)
    assert data_set is not None
    with _established(node.dimse_port) as sock:
        sock.sendall(_p_data(1, 0x03, _store_command(str(lost.SOPInstanceUID))))
        sock.sendall(_p_data(1, 0x00, data_set[: len(data_set) // 2]))
    assert_alive(node)
    uids = image_uids(node.dimse_port, SeriesInstanceUID=str(kept.SeriesInstanceUID))
    assert uids == {str(kept.SOPInstanceUID)}
