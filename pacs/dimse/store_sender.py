"""A lean Storage SCU: sends stored instances as they are, for C-MOVE sub-operations.

pynetdicom's C-MOVE wants a decoded Dataset per instance and re-encodes it; here the
stored Part 10 file is streamed from just after its File Meta header straight into P-DATA
PDUs. Only when the destination accepted no context for the stored syntax but an
uncompressed one is the data set decoded and re-encoded, in the sending thread: Implicit <->
Explicit VR Little Endian, or compressed pixel data (e.g. a cold tier's JPEG-LS lossless
copy) decompressed for a peer that takes only uncompressed syntaxes.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from pydicom import dcmread
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from pacs.core.dicom_header import IMPLEMENTATION_VERSION_NAME
from pacs.core.model import StoredInstance
from pacs.dimse import upper_layer
from pacs.dimse.upper_layer import ProtocolError

log = logging.getLogger("pacs.dimse")

UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")  # Explicit, Implicit VR LE
_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
MAX_CONTEXTS = 128  # presentation contexts one association may propose
_READ_CHUNK = 1024 * 1024


class DestinationUnavailable(Exception):
    """The destination could not be reached or refused the association."""


def proposals(instances: list[StoredInstance]) -> list[tuple[str, list[str]]]:
    """One context per (SOP class, stored syntax), uncompressed ones also offering the
    other; then, for compressed ones, an uncompressed context to decompress into when the
    destination does not take the stored syntax (proposed last: dropped first past 128)."""
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    fallbacks: dict[tuple[str, tuple[str, ...]], None] = {}
    for stored in instances:
        if stored.transfer_syntax in UNCOMPRESSED:
            syntaxes = tuple(sorted(UNCOMPRESSED, key=lambda ts: ts != stored.transfer_syntax))
        else:
            syntaxes = (stored.transfer_syntax,)
            fallbacks[(stored.sop_class_uid, UNCOMPRESSED)] = None
        wanted[(stored.sop_class_uid, syntaxes)] = None
    for key in fallbacks:
        wanted.setdefault(key, None)
    proposals = [(sop_class, list(syntaxes)) for sop_class, syntaxes in wanted]
    if len(proposals) > MAX_CONTEXTS:
        log.warning(
            "%d presentation contexts needed, only %d can be proposed",
            len(proposals),
            MAX_CONTEXTS,
        )
    return proposals[:MAX_CONTEXTS]


def reencoded(handle: BinaryIO, syntax: str) -> bytes:
    """The data set of a stored file in the uncompressed ``syntax`` (pixel data decoded
    when it is compressed): the slow path, for peers that did not accept the stored one."""
    try:
        ds = dcmread(handle)
        if "PixelData" in ds and UID(ds.file_meta.TransferSyntaxUID).is_compressed:
            ds.decompress(generate_instance_uid=False)  # the same instance, decoded
        payload = encode(ds, syntax == UNCOMPRESSED[1], True)
    except Exception as exc:  # codec and parser errors on the stored file
        raise ValueError(f"cannot re-encode as {syntax}: {type(exc).__name__}: {exc}") from exc
    if payload is None:
        raise ValueError(f"cannot re-encode as {syntax}")
    return bytes(payload)


def data_set_stream(handle: BinaryIO) -> Iterator[bytes]:
    """The data set of a stored Part 10 file, in chunks, without its preamble and File Meta."""
    head = handle.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        raise ValueError("stored file has no standard File Meta header")
    (meta_length,) = struct.unpack("<I", head[140:144])
    handle.seek(144 + meta_length)
    while chunk := handle.read(_READ_CHUNK):
        yield chunk


class StoreChannel:
    """C-STORE requests over an established association: the requestor's own association
    for C-GET, or one opened to a destination for C-MOVE."""

    def __init__(
        self,
        sock: socket.socket,
        accepted: dict[tuple[str, str], int],
        peer_max_pdu: int,
        peer: str,
        on_other_command: Callable[[upper_layer.Command], None] | None = None,
    ) -> None:
        self.sock = sock
        self.accepted = accepted  # (SOP class, transfer syntax) -> presentation context id
        self.peer_max_pdu = peer_max_pdu
        self.peer = peer
        self.on_other_command = on_other_command
        self._message_id = 0

    def _context_for(self, stored: StoredInstance) -> tuple[int, str] | None:
        exact = self.accepted.get((stored.sop_class_uid, stored.transfer_syntax))
        if exact is not None:
            return exact, stored.transfer_syntax
        for syntax in UNCOMPRESSED:  # decoded and re-encoded on the way (slow path)
            context = self.accepted.get((stored.sop_class_uid, syntax))
            if context is not None:
                return context, syntax
        return None

    def send(
        self,
        stored: StoredInstance,
        handle: BinaryIO,
        originator_ae: str = "",
        originator_message_id: int = 0,
    ) -> int:
        """C-STORE one instance; its response status (raises on a lost association)."""
        choice = self._context_for(stored)
        if choice is None:
            log.warning(
                "%s accepted no context for %s in %s",
                self.peer,
                stored.sop_uid,
                stored.transfer_syntax,
            )
            return 0xA900
        context_id, syntax = choice
        payload = None
        if syntax != stored.transfer_syntax:  # decoded before anything goes out
            if stored.transfer_syntax not in UNCOMPRESSED:
                log.info(
                    "%s takes no %s for %s: sending it decompressed as %s",
                    self.peer,
                    stored.transfer_syntax,
                    stored.sop_uid,
                    syntax,
                )
            payload = reencoded(handle, syntax)
        self._message_id = self._message_id % 65535 + 1
        writer = upper_layer.PduWriter(self.sock, self.peer_max_pdu)
        command = upper_layer.store_request(
            stored.sop_class_uid,
            stored.sop_uid,
            self._message_id,
            originator_ae,
            originator_message_id,
        )
        writer.add(context_id, True, command)
        writer.end_message()
        if payload is None:
            previous: bytes | None = None
            for chunk in data_set_stream(handle):  # one chunk of look-ahead marks the last
                if previous is not None:
                    writer.add(context_id, False, previous, last=False)
                    writer.maybe_flush()
                previous = chunk
            writer.add(context_id, False, previous or b"")
        else:
            writer.add(context_id, False, payload)
        writer.flush()
        return self._response_status()

    def _response_status(self) -> int:
        fragments: list[bytes] = []
        while True:
            pdu_type, body = upper_layer.read_pdu(self.sock)
            if pdu_type != upper_layer.P_DATA_TF:
                raise ProtocolError(
                    f"{self.peer} sent PDU 0x{pdu_type:02X} instead of a C-STORE response"
                )
            for _, control, fragment in upper_layer.iter_pdvs(memoryview(body)):
                if not control & 0x01:
                    raise ProtocolError(f"{self.peer} sent a data set instead of a response")
                fragments.append(bytes(fragment))
                if control & 0x02:
                    command = upper_layer.parse_command(b"".join(fragments))
                    fragments.clear()
                    if command.command_field == upper_layer.C_STORE_RSP:
                        return command.status
                    if self.on_other_command is None:
                        raise ProtocolError(
                            f"{self.peer} sent command 0x{command.command_field:04X}"
                        )
                    self.on_other_command(command)


class StoreSender:
    """An association to a C-MOVE destination, over which instances are sent."""

    def __init__(
        self, calling_ae: str, called_ae: str, host: str, port: int, timeout: float
    ) -> None:
        self.calling_ae = calling_ae
        self.called_ae = called_ae
        self.address = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.channel: StoreChannel | None = None

    def open(self, instances: list[StoredInstance]) -> None:
        """Connect and negotiate contexts for these instances."""
        request = A_ASSOCIATE()
        request.application_context_name = _APPLICATION_CONTEXT
        request.calling_ae_title = self.calling_ae
        request.called_ae_title = self.called_ae
        contexts = []
        for number, (sop_class, syntaxes) in enumerate(proposals(instances)):
            context = build_context(sop_class, syntaxes)
            context.context_id = 2 * number + 1
            contexts.append(context)
        request.presentation_context_definition_list = contexts
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = 0
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        request.user_information = [maximum, implementation, version]
        pdu = AssociateRqPdu()
        pdu.from_primitive(request)
        try:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.sendall(pdu.encode())
            pdu_type, body = upper_layer.read_pdu(self.sock)
        except (OSError, upper_layer.PeerClosed, ProtocolError) as exc:
            self.close()
            raise DestinationUnavailable(
                f"cannot reach {self.called_ae} at {self.address[0]}:{self.address[1]}: {exc}"
            ) from exc
        if pdu_type != upper_layer.A_ASSOCIATE_AC:
            self.close()
            raise DestinationUnavailable(f"{self.called_ae} refused the association")
        answer = AssociateAcPdu()
        answer.decode(bytes(upper_layer.pdu_header(pdu_type, len(body)) + body))
        accepted_primitive = answer.to_primitive()
        proposed = {cx.context_id: str(cx.abstract_syntax) for cx in contexts}
        accepted: dict[tuple[str, str], int] = {}
        for result in accepted_primitive.presentation_context_definition_results_list:
            context_id = result.context_id
            if result.result == 0 and context_id is not None and context_id in proposed:
                accepted[(proposed[context_id], str(result.transfer_syntax[0]))] = context_id
        self.channel = StoreChannel(
            self.sock,
            accepted,
            int(accepted_primitive.maximum_length_received or 0),
            self.called_ae,
        )

    def send(
        self,
        stored: StoredInstance,
        handle: BinaryIO,
        originator_ae: str,
        originator_message_id: int,
    ) -> int:
        """C-STORE one instance as a C-MOVE sub-operation; its response status."""
        assert self.channel is not None
        return self.channel.send(stored, handle, originator_ae, originator_message_id)

    def close(self) -> None:
        """Release the association (or just close when it never opened)."""
        if self.sock is None:
            return
        try:
            if self.channel is not None:
                self.sock.sendall(upper_layer.release_rq())
                upper_layer.read_pdu(self.sock)
        except (OSError, ProtocolError, upper_layer.PeerClosed):
            pass
        finally:
            self.sock.close()
            self.sock = None
