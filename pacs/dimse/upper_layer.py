"""The few DICOM upper-layer PDUs and DIMSE command sets the storage fast path needs (PS3.8, PS3.7).

Association negotiation itself uses pynetdicom's PDU classes; this module encodes the
fixed-shape PDUs (P-DATA-TF, A-RELEASE-RP, A-ABORT, A-ASSOCIATE-RJ) and reads and writes
command sets, which are always Implicit VR Little Endian.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_FIND_RQ = 0x0020
C_FIND_RSP = 0x8020
C_CANCEL_RQ = 0x0FFF
C_MOVE_RQ = 0x0021
C_MOVE_RSP = 0x8021
C_GET_RQ = 0x0010
C_GET_RSP = 0x8010
NO_DATA_SET = 0x0101
DATA_SET_PRESENT = 0x0000

_COMMAND_FIELD = 0x00000100
_MESSAGE_ID = 0x00000110
_MESSAGE_ID_RESPONDED_TO = 0x00000120
_AFFECTED_SOP_CLASS = 0x00000002
_AFFECTED_SOP_INSTANCE = 0x00001000
_DATA_SET_TYPE = 0x00000800
_MOVE_ORIGINATOR_AE = 0x00001030
_MOVE_DESTINATION = 0x00000600
_STATUS = 0x00000900


_DEFAULT_PDU = 1024 * 1024
_CHUNK = 4 * 1024 * 1024
_MAX_PDU_BYTES = 512 * 1024 * 1024
_SEND_BATCH = 256 * 1024


class PeerClosed(Exception):
    """The peer closed the connection."""


class ProtocolError(Exception):
    """The peer broke the upper-layer or DIMSE protocol."""


@dataclass(frozen=True)
class Command:
    """The fields of a DIMSE request command set that the fast path acts on."""

    command_field: int
    message_id: int
    sop_class_uid: str
    sop_instance_uid: str
    has_data_set: bool
    status: int = 0
    move_destination: str = ""


def pdu_header(pdu_type: int, length: int) -> bytes:
    """Type, reserved byte, 4-byte big-endian length."""
    return struct.pack(">BBI", pdu_type, 0, length)


def release_rq() -> bytes:
    """A-RELEASE-RQ."""
    return pdu_header(A_RELEASE_RQ, 4) + b"\x00" * 4


def release_rp() -> bytes:
    """A-RELEASE-RP."""
    return pdu_header(A_RELEASE_RP, 4) + b"\x00" * 4


def abort(source: int = 2, reason: int = 0) -> bytes:
    """A-ABORT (source 0 = service user, 2 = service provider)."""
    return pdu_header(A_ABORT, 4) + bytes((0, 0, source, reason))


def associate_rj(result: int, source: int, reason: int) -> bytes:
    """A-ASSOCIATE-RJ (PS3.8 9.3.4)."""
    return pdu_header(A_ASSOCIATE_RJ, 4) + bytes((0, result, source, reason))


class PduWriter:
    """Packs messages into P-DATA-TF PDUs no larger than the peer accepts, and sends many
    PDUs per system call, so a long list of C-FIND answers goes out in a few large sends.

    Each message (a command and its data set) ends its PDU: some toolkits (pynetdicom)
    read only one message from a P-DATA-TF and drop what follows in the same PDU.
    """

    def __init__(self, sock: socket.socket, peer_max_pdu: int) -> None:
        self.sock = sock
        self.limit = min(peer_max_pdu, _DEFAULT_PDU) if peer_max_pdu else _DEFAULT_PDU
        self._pdu: list[bytes] = []
        self._pdu_size = 0
        self._out: list[bytes] = []
        self._out_size = 0

    def add(self, context_id: int, is_command: bool, payload: bytes, last: bool = True) -> None:
        """Queue one message part, split into PDVs and PDUs as needed; the final PDV is
        flagged as the message part's last fragment unless ``last`` is False (streaming)."""
        position = 0
        while True:
            room = self.limit - self._pdu_size - 6
            if room <= 0:
                self._close_pdu()
                room = self.limit - 6
            chunk = payload[position : position + room]
            position += len(chunk)
            done = position >= len(payload)
            control = (0x01 if is_command else 0x00) | (0x02 if done and last else 0x00)
            self._pdu.append(struct.pack(">IBB", len(chunk) + 2, context_id, control))
            self._pdu.append(chunk)
            self._pdu_size += 6 + len(chunk)
            if done:
                return

    def end_message(self) -> None:
        """The message is complete: close its PDU; send when enough has gathered."""
        self._close_pdu()
        if self._out_size >= _SEND_BATCH:
            self.flush()

    def _close_pdu(self) -> None:
        if self._pdu_size:
            self._out.append(pdu_header(P_DATA_TF, self._pdu_size))
            self._out.extend(self._pdu)
            self._out_size += 6 + self._pdu_size
            self._pdu.clear()
            self._pdu_size = 0

    def maybe_flush(self) -> None:
        """Send what is queued once enough has gathered (for streamed data sets)."""
        if self._out_size >= _SEND_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send everything queued."""
        self._close_pdu()
        if self._out:
            self.sock.sendall(b"".join(self._out))
            self._out.clear()
            self._out_size = 0


def iter_pdvs(body: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(context id, message control header, fragment) for each PDV item of a P-DATA-TF."""
    offset = 0
    end = len(body)
    while offset < end:
        if offset + 6 > end:
            raise ProtocolError("truncated PDV item")
        (length,) = struct.unpack_from(">I", body, offset)
        if length < 2 or offset + 4 + length > end:
            raise ProtocolError(f"invalid PDV item length {length}")
        yield body[offset + 4], body[offset + 5], body[offset + 6 : offset + 4 + length]
        offset += 4 + length


def _uid(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def parse_command(data: bytes) -> Command:
    """Read a command set (Implicit VR Little Endian, group 0000)."""
    values: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(data):
        group, element, length = struct.unpack_from("<HHI", data, offset)
        offset += 8
        if offset + length > len(data):
            raise ProtocolError("truncated command set")
        values[(group << 16) | element] = data[offset : offset + length]
        offset += length
    message_id_value = values.get(_MESSAGE_ID, values.get(_MESSAGE_ID_RESPONDED_TO))
    try:
        command_field = struct.unpack("<H", values[_COMMAND_FIELD][:2])[0]
        message_id = struct.unpack("<H", message_id_value[:2])[0]  # type: ignore[index]
    except (KeyError, TypeError, struct.error):
        raise ProtocolError("command set without Command Field or Message ID") from None
    data_set_type = values.get(_DATA_SET_TYPE, b"\x01\x01")
    return Command(
        command_field=command_field,
        message_id=message_id,
        sop_class_uid=_uid(values.get(_AFFECTED_SOP_CLASS, b"")),
        sop_instance_uid=_uid(values.get(_AFFECTED_SOP_INSTANCE, b"")),
        has_data_set=struct.unpack("<H", data_set_type[:2])[0] != NO_DATA_SET,
        status=struct.unpack("<H", values.get(_STATUS, b"\x00\x00")[:2])[0],
        move_destination=values.get(_MOVE_DESTINATION, b"").decode("ascii", "replace").strip(),
    )


def store_request(
    sop_class_uid: str,
    sop_uid: str,
    message_id: int,
    originator_ae: str,
    originator_message_id: int,
) -> bytes:
    """A C-STORE-RQ command set, as a C-MOVE sub-operation when ``originator_ae`` is set."""
    body = _element(0x0000, 0x0002, _text(sop_class_uid, b"\x00"))
    body += _element(0x0000, 0x0100, struct.pack("<H", C_STORE_RQ))
    body += _element(0x0000, 0x0110, struct.pack("<H", message_id))
    body += _element(0x0000, 0x0700, struct.pack("<H", 0))
    body += _element(0x0000, 0x0800, struct.pack("<H", DATA_SET_PRESENT))
    body += _element(0x0000, 0x1000, _text(sop_uid, b"\x00"))
    if originator_ae:
        body += _element(0x0000, 0x1030, _text(originator_ae, b" "))
        body += _element(0x0000, 0x1031, struct.pack("<H", originator_message_id))
    return _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def _element(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, element, len(value)) + value


def _text(value: str, padding: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    return raw + padding if len(raw) % 2 else raw


def response(
    request: Command,
    command_field: int,
    status: int,
    error_comment: str = "",
    has_data_set: bool = False,
    counts: tuple[int, int, int, int] | None = None,
) -> bytes:
    """The command set answering a request (C-STORE/ECHO/FIND/MOVE/GET-RSP); ``counts`` are
    the (remaining, completed, failed, warning) sub-operations of a C-MOVE or C-GET."""
    data_set_type = DATA_SET_PRESENT if has_data_set else NO_DATA_SET
    body = _element(0x0000, 0x0002, _text(request.sop_class_uid, b"\x00"))
    body += _element(0x0000, 0x0100, struct.pack("<H", command_field))
    body += _element(0x0000, 0x0120, struct.pack("<H", request.message_id))
    body += _element(0x0000, 0x0800, struct.pack("<H", data_set_type))
    body += _element(0x0000, 0x0900, struct.pack("<H", status))
    if error_comment:
        body += _element(0x0000, 0x0902, _text(error_comment[:64], b" "))
    if command_field == C_STORE_RSP:
        body += _element(0x0000, 0x1000, _text(request.sop_instance_uid, b"\x00"))
    if counts is not None:
        for element, count in zip((0x1020, 0x1021, 0x1022, 0x1023), counts, strict=True):
            body += _element(0x0000, element, struct.pack("<H", min(count, 65535)))
    return _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def read_exact(sock: socket.socket, size: int) -> bytearray:
    """Exactly ``size`` bytes, read into one buffer with ``recv_into``."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:], size - received)
        if count == 0:
            raise PeerClosed()
        received += count
    return buffer


def read_pdu(sock: socket.socket) -> tuple[int, bytes | bytearray]:
    """One PDU: its type and body. Large bodies are read in chunks, never allocated up front
    from a length the peer declared (a hostile peer cannot make us reserve gigabytes)."""
    header = read_exact(sock, 6)
    pdu_type = header[0]
    (length,) = struct.unpack(">I", header[2:6])
    if length > _MAX_PDU_BYTES:
        raise ProtocolError(f"PDU of {length} bytes exceeds {_MAX_PDU_BYTES}")
    if length <= _CHUNK:
        return pdu_type, read_exact(sock, length)
    chunks = []
    remaining = length
    while remaining:
        chunk = read_exact(sock, min(remaining, _CHUNK))
        chunks.append(chunk)
        remaining -= len(chunk)
    return pdu_type, b"".join(chunks)
