"""A lean acceptor for the associations a PACS receives: C-ECHO, C-STORE, C-FIND, C-MOVE
and C-GET.

pynetdicom runs two polling threads per association and hands every 16 KB PDU through
queues; that caps a Python C-STORE SCP far below what the wire and disk allow. This module
peeks at the A-ASSOCIATE-RQ without consuming it and, when every proposed presentation
context is Verification, storage or query/retrieve, negotiates with pynetdicom's PDU classes
(role selection included) and then reads P-DATA with large ``recv_into`` calls, assembles
data sets from their PDV fragments without copying, stores through the same
:class:`StoreService`, queries through the same :class:`FindService` as the pynetdicom
handlers and retrieves through :class:`RetrieveService` (stored files streamed to the C-MOVE
destination or back over the C-GET requestor's association), with hand-built responses
(C-FIND answers encoded straight from index values and packed into large PDUs). Any other
association is left untouched for pynetdicom.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.filereader import read_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import ALL_TRANSFER_SYNTAXES, PYNETDICOM_IMPLEMENTATION_UID
from pynetdicom.pdu import A_ASSOCIATE_AC as AssociateAcPdu
from pynetdicom.pdu import A_ASSOCIATE_RQ as AssociateRqPdu
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
)
from pynetdicom.presentation import build_context, negotiate_as_acceptor
from pynetdicom.sop_class import uid_to_service_class

from pacs.core.dicom_header import IMPLEMENTATION_VERSION_NAME, encode_file_meta
from pacs.dimse import status, upper_layer
from pacs.dimse.find_service import (
    FIND_SOP_CLASSES,
    GET_SOP_CLASSES,
    MOVE_SOP_CLASSES,
    FindService,
)
from pacs.dimse.retrieve_service import RetrieveService
from pacs.dimse.store_sender import StoreChannel
from pacs.dimse.store_service import AssociationStats, StoreService, storage_refusal
from pacs.dimse.upper_layer import Command, PeerClosed, ProtocolError, read_exact, read_pdu
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")

_VERIFICATION = "1.2.840.10008.1.1"
_MAX_RQ_BYTES = 1024 * 1024
_ALL_SYNTAXES = frozenset(ALL_TRANSFER_SYNTAXES)
_QUERY_RETRIEVE = FIND_SOP_CLASSES | MOVE_SOP_CLASSES | GET_SOP_CLASSES
_QUERY_SYNTAXES = [str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)]


def _is_served(abstract_syntax: str) -> bool:
    """Verification, C-FIND or storage; unknown (private) SOP classes count as storage."""
    if abstract_syntax == _VERIFICATION or abstract_syntax in _QUERY_RETRIEVE:
        return True
    service = uid_to_service_class(UID(abstract_syntax)).__name__
    return service in ("StorageServiceClass", "ServiceClass")


def fast_path_serves(request: A_ASSOCIATE) -> bool:
    """Whether every proposed context is one the fast path serves (echo, store, Q/R)."""
    contexts = request.presentation_context_definition_list
    return bool(contexts) and all(_is_served(str(cx.abstract_syntax)) for cx in contexts)


def _peek(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Up to ``size`` bytes of what is waiting on the socket, without consuming them."""
    while True:
        data = sock.recv(size, socket.MSG_PEEK)
        if len(data) >= size or not data or time.monotonic() > deadline:
            return data
        time.sleep(0.001)  # the rest of the PDU is still in flight


def peek_associate_rq(sock: socket.socket, timeout: float) -> bytes | None:
    """The whole A-ASSOCIATE-RQ PDU if that is what the peer sent first, else None."""
    deadline = time.monotonic() + timeout
    header = _peek(sock, 6, deadline)
    if len(header) < 6 or header[0] != upper_layer.A_ASSOCIATE_RQ:
        return None
    (length,) = struct.unpack(">I", header[2:6])
    if length > _MAX_RQ_BYTES:
        return None
    pdu = _peek(sock, 6 + length, deadline)
    return pdu if len(pdu) == 6 + length else None


@dataclass
class _Negotiated:
    """The accepted presentation contexts: id -> (abstract syntax, transfer syntax)."""

    contexts: dict[int, tuple[str, str]] = field(default_factory=dict)
    store_contexts: dict[tuple[str, str], int] = field(default_factory=dict)
    peer_max_pdu: int = 0


class FastAcceptor:
    """Serves storage-only associations on an accepted socket; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store_service: StoreService,
        find_service: FindService,
        retrieve_service: RetrieveService,
    ) -> None:
        self.settings = settings
        self.store_service = store_service
        self.find_service = find_service
        self.retrieve_service = retrieve_service
        self.runtime = settings.runtime_settings()
        self._active = 0
        self._lock = threading.Lock()

    # --- entry point ----------------------------------------------------------------------

    def handle(self, sock: socket.socket, address: Any) -> bool:
        """Serve the connection if the fast path can serve every context it proposes;
        False leaves the connection untouched, for pynetdicom."""
        previous_timeout = sock.gettimeout()
        try:
            sock.settimeout(self.settings.dimse.acse_timeout)
            raw_rq = peek_associate_rq(sock, self.settings.dimse.acse_timeout)
        except OSError:
            raw_rq = None
        request = self._decode(raw_rq) if raw_rq is not None else None
        if raw_rq is None or request is None or not fast_path_serves(request):
            sock.settimeout(previous_timeout)
            return False
        try:
            read_exact(sock, len(raw_rq))  # consume what was peeked
        except (OSError, PeerClosed):
            return True
        host, port = address[0], address[1]
        stats = AssociationStats(str(request.calling_ae_title).strip(), f"{host}:{port}")
        if not self._admit(sock, request, stats):
            return True
        try:
            negotiated = self._accept(sock, request)
            stats.log_accepted(id(stats))
            sock.settimeout(self.settings.dimse.network_timeout or None)
            how = self._serve(sock, negotiated, stats)
        except (OSError, PeerClosed):
            how = "aborted (connection lost)"
        except ProtocolError as exc:
            log.warning("association from %s: protocol error: %s", stats.calling_ae, exc)
            _send_quietly(sock, upper_layer.abort(source=2, reason=0))
            how = "aborted (protocol error)"
        except Exception:  # a bug of ours: log it, abort this association, keep serving
            log.exception("association from %s failed", stats.calling_ae)
            _send_quietly(sock, upper_layer.abort(source=2, reason=0))
            how = "aborted (internal error)"
        finally:
            with self._lock:
                self._active -= 1
        stats.log_ended(id(stats), how)
        return True

    @staticmethod
    def _decode(raw_rq: bytes) -> A_ASSOCIATE | None:
        try:
            pdu = AssociateRqPdu()
            pdu.decode(raw_rq)
            primitive: A_ASSOCIATE = pdu.to_primitive()
            return primitive
        except Exception:  # malformed: pynetdicom will answer it properly
            return None

    # --- association establishment ---------------------------------------------------------

    def _admit(self, sock: socket.socket, request: A_ASSOCIATE, stats: AssociationStats) -> bool:
        """Apply the calling/called AE rules and the association limit (A-ASSOCIATE-RJ)."""
        dimse = self.settings.dimse
        calling = stats.calling_ae
        called = str(request.called_ae_title).strip()
        rejection: tuple[int, int, int] | None = None
        if (
            not dimse.accept_unknown_callers
            and self.store_service.archive.modalities.by_ae(calling) is None
        ):
            rejection = (1, 1, 3)  # permanent, service user, calling AE title not recognised
        elif dimse.require_called_ae_title and called != dimse.ae_title:
            rejection = (1, 1, 7)  # permanent, service user, called AE title not recognised
        else:
            with self._lock:
                if self._active >= dimse.max_associations:
                    rejection = (2, 3, 2)  # transient, presentation provider, local limit
                else:
                    self._active += 1
        if rejection is None:
            return True
        log.warning(
            "association rejected from %s (%s) to %s: reason %d",
            calling,
            stats.address,
            called,
            rejection[2],
        )
        _send_quietly(sock, upper_layer.associate_rj(*rejection))
        return False

    def _accept(self, sock: socket.socket, request: A_ASSOCIATE) -> _Negotiated:
        proposed = request.presentation_context_definition_list
        supported = []
        wanted: dict[str, list[str]] = {}  # abstract syntax -> proposed syntaxes, in order
        for cx in proposed:
            syntaxes = wanted.setdefault(str(cx.abstract_syntax), [])
            syntaxes.extend(str(ts) for ts in cx.transfer_syntax if str(ts) not in syntaxes)
        roles = {
            UID(item.sop_class_uid): (item.scu_role, item.scp_role)
            for item in request.user_information
            if isinstance(item, SCP_SCU_RoleSelectionNegotiation) and item.sop_class_uid
        }
        runtime = self.runtime.current()
        for abstract_syntax, syntaxes in wanted.items():
            if abstract_syntax in _QUERY_RETRIEVE:
                supported.append(build_context(abstract_syntax, _QUERY_SYNTAXES))
                continue
            # Storage: take the requestor's preferred syntax (what a sender holds, what a
            # C-GET receiver wants); we may also be the SCU of it, for C-GET sub-operations.
            ours = [ts for ts in syntaxes if ts in _ALL_SYNTAXES] or [str(ExplicitVRLittleEndian)]
            if abstract_syntax != _VERIFICATION and UID(abstract_syntax) not in roles:
                # Only storing to us (no C-GET role): the runtime settings decide.
                ours = [ts for ts in ours if not storage_refusal(runtime, abstract_syntax, ts)]
                if not ours:
                    continue  # rejected: abstract syntax not supported
            context = build_context(abstract_syntax, ours)
            if abstract_syntax != _VERIFICATION:
                context.scu_role = True
                context.scp_role = True
            supported.append(context)
        results, role_replies = negotiate_as_acceptor(proposed, supported, roles)
        log.debug(
            "association from %s: %d of %d presentation contexts accepted",
            str(request.calling_ae_title).strip(),
            sum(1 for context in results if context.result == 0),
            len(results),
        )
        answer = A_ASSOCIATE()
        answer.application_context_name = request.application_context_name
        answer.calling_ae_title = request.calling_ae_title
        answer.called_ae_title = request.called_ae_title
        answer.result = 0x00
        answer.presentation_context_definition_results_list = results
        maximum = MaximumLengthNotification()
        maximum.maximum_length_received = self.settings.dimse.max_pdu_size
        implementation = ImplementationClassUIDNotification()
        implementation.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        answer.user_information = [maximum, implementation, version, *role_replies]
        pdu = AssociateAcPdu()
        pdu.from_primitive(answer)
        sock.sendall(pdu.encode())
        negotiated = _Negotiated(peer_max_pdu=int(request.maximum_length_received or 0))
        for context in results:
            if context.result == 0 and context.context_id is not None:
                key = (str(context.abstract_syntax), str(context.transfer_syntax[0]))
                negotiated.contexts[context.context_id] = key
                if context.as_scu:  # the requestor will store what we send (C-GET)
                    negotiated.store_contexts[key] = context.context_id
        return negotiated

    # --- P-DATA ------------------------------------------------------------------------------

    def _serve(self, sock: socket.socket, negotiated: _Negotiated, stats: AssociationStats) -> str:
        """Read PDUs until release or abort; returns how the association ended."""
        command_fragments: list[memoryview] = []
        data_fragments: list[memoryview] = []
        command: Command | None = None
        command_context = 0
        while True:
            pdu_type, body = read_pdu(sock)
            if pdu_type == upper_layer.A_RELEASE_RQ:
                sock.sendall(upper_layer.release_rp())
                return "released"
            if pdu_type == upper_layer.A_ABORT:
                return "aborted by the peer"
            if pdu_type != upper_layer.P_DATA_TF:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X}")
            for context_id, control, fragment in upper_layer.iter_pdvs(memoryview(body)):
                if context_id not in negotiated.contexts:
                    raise ProtocolError(f"presentation context {context_id} was not accepted")
                last = bool(control & 0x02)
                if control & 0x01:  # command fragment
                    command_fragments.append(fragment)
                    if not last:
                        continue
                    command = upper_layer.parse_command(b"".join(command_fragments))
                    command_fragments.clear()
                    command_context = context_id
                    if not command.has_data_set:
                        self._answer(sock, context_id, command, None, negotiated, stats)
                        command = None
                    continue
                if command is None or context_id != command_context:
                    raise ProtocolError("data set fragment without a matching command")
                data_fragments.append(fragment)
                if last:
                    self._answer(sock, context_id, command, data_fragments, negotiated, stats)
                    data_fragments = []
                    command = None

    def _answer(
        self,
        sock: socket.socket,
        context_id: int,
        command: Command,
        data: list[memoryview] | None,
        negotiated: _Negotiated,
        stats: AssociationStats,
    ) -> None:
        """Run a complete request and send its response."""
        writer = upper_layer.PduWriter(sock, negotiated.peer_max_pdu)
        if command.command_field == upper_layer.C_CANCEL_RQ:
            return  # the answers went out as one burst: nothing is left to cancel
        if command.command_field == upper_layer.C_FIND_RQ and data is not None:
            self._find(writer, context_id, command, b"".join(data), negotiated, stats)
            return
        if command.command_field in (upper_layer.C_MOVE_RQ, upper_layer.C_GET_RQ) and data:
            self._retrieve(sock, writer, context_id, command, b"".join(data), negotiated, stats)
            return
        if command.command_field == upper_layer.C_ECHO_RQ:
            rsp = upper_layer.response(command, upper_layer.C_ECHO_RSP, status.SUCCESS)
        elif command.command_field == upper_layer.C_STORE_RQ and data is not None:
            transfer_syntax = negotiated.contexts[context_id][1]
            try:
                meta = encode_file_meta(
                    command.sop_class_uid,
                    command.sop_instance_uid,
                    transfer_syntax,
                    stats.calling_ae,
                )
            except Exception as exc:  # a UID that cannot be encoded
                code, comment = self.store_service.failure(stats, command.sop_instance_uid, exc)
            else:
                part10 = b"".join([meta, *data])
                code, comment = self.store_service.store(
                    part10, stats, command.sop_class_uid, command.sop_instance_uid
                )
            rsp = upper_layer.response(command, upper_layer.C_STORE_RSP, code, comment)
        else:
            raise ProtocolError(
                f"unsupported command 0x{command.command_field:04X} on a storage association"
            )
        writer.add(context_id, True, rsp)
        writer.flush()

    def _retrieve(
        self,
        sock: socket.socket,
        writer: upper_layer.PduWriter,
        context_id: int,
        command: Command,
        identifier_bytes: bytes,
        negotiated: _Negotiated,
        stats: AssociationStats,
    ) -> None:
        """Answer a C-MOVE or C-GET: sub-operations, pending and final responses."""
        implicit = negotiated.contexts[context_id][1] == str(ImplicitVRLittleEndian)
        is_get = command.command_field == upper_layer.C_GET_RQ
        try:
            identifier = read_dataset(BytesIO(identifier_bytes), implicit, True)
        except Exception as exc:
            code = self.find_service.failure("C-GET" if is_get else "C-MOVE", stats, exc)
            field = upper_layer.C_GET_RSP if is_get else upper_layer.C_MOVE_RSP
            failure = upper_layer.response(command, field, code, str(exc))
            writer.add(context_id, True, failure)
            writer.flush()
            return
        cancel = _CancelWatch(sock)
        if not is_get:
            self.retrieve_service.move(
                writer, context_id, command, identifier, implicit, stats, cancel.requested
            )
            return
        channel = StoreChannel(
            sock,
            negotiated.store_contexts,
            negotiated.peer_max_pdu,
            stats.calling_ae,
            on_other_command=cancel.seen,
        )
        self.retrieve_service.get(
            writer, context_id, command, identifier, implicit, stats, channel, cancel.requested
        )

    def _find(
        self,
        writer: upper_layer.PduWriter,
        context_id: int,
        command: Command,
        identifier_bytes: bytes,
        negotiated: _Negotiated,
        stats: AssociationStats,
    ) -> None:
        """Answer a C-FIND: every match as a pending response, then the final one."""
        transfer_syntax = negotiated.contexts[context_id][1]
        implicit = transfer_syntax == str(ImplicitVRLittleEndian)
        try:
            identifier = read_dataset(BytesIO(identifier_bytes), implicit, True)
            answers = self.find_service.find(identifier, command.sop_class_uid, stats)
        except Exception as exc:
            code = self.find_service.failure("C-FIND", stats, exc)
            comment = str(exc)[:64] or type(exc).__name__
            failure = upper_layer.response(command, upper_layer.C_FIND_RSP, code, comment)
            writer.add(context_id, True, failure)
            writer.flush()
            return
        pending = upper_layer.response(
            command, upper_layer.C_FIND_RSP, status.PENDING, has_data_set=True
        )
        for answer in answers:
            writer.add(context_id, True, pending)
            writer.add(context_id, False, answer.encode(implicit))
            writer.end_message()
        writer.add(context_id, True, upper_layer.response(command, upper_layer.C_FIND_RSP, 0))
        writer.flush()


class _CancelWatch:
    """Notices a C-CANCEL-RQ from the requestor during a C-MOVE or C-GET."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cancelled = False

    def seen(self, command: Command) -> None:
        """A command read while waiting for something else (C-GET sub-operation replies)."""
        if command.command_field != upper_layer.C_CANCEL_RQ:
            raise ProtocolError(f"unexpected command 0x{command.command_field:04X}")
        self.cancelled = True

    def requested(self) -> bool:
        """Whether the requestor cancelled (checked between sub-operations)."""
        if self.cancelled:
            return True
        ready, _, _ = select.select([self.sock], [], [], 0)
        if not ready:
            return False
        pdu_type, body = read_pdu(self.sock)
        if pdu_type == upper_layer.A_ABORT:
            raise PeerClosed()
        if pdu_type != upper_layer.P_DATA_TF:
            raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X} during a retrieve")
        for _, control, fragment in upper_layer.iter_pdvs(memoryview(body)):
            if control & 0x01:
                self.seen(upper_layer.parse_command(bytes(fragment)))
        return self.cancelled


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
