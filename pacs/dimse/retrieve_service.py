"""C-MOVE and C-GET for the fast path: find the instances, send them with the lean Storage
SCU (to the move destination, or back over the requestor's own association for C-GET),
and report pending and final sub-operation counts (PS3.4 C.4.2, C.4.3)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydicom.dataset import Dataset

from pacs.core.answer import Answer
from pacs.core.archive import Archive
from pacs.core.model import StoredInstance
from pacs.dimse import status, upper_layer
from pacs.dimse.find_service import FindService, instances_to_retrieve
from pacs.dimse.store_sender import DestinationUnavailable, StoreChannel, StoreSender
from pacs.dimse.store_service import AssociationStats
from pacs.dimse.upper_layer import Command, ProtocolError
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")

_FAILED_SOP_INSTANCE_UID_LIST = 0x00080058
Counts = tuple[int, int, int, int]  # remaining, completed, failed, warning


class _Responder:
    """Pending and final C-MOVE-RSP / C-GET-RSP messages for one request."""

    def __init__(
        self,
        writer: upper_layer.PduWriter,
        context_id: int,
        command: Command,
        command_field: int,
        implicit: bool,
    ) -> None:
        self.writer = writer
        self.context_id = context_id
        self.command = command
        self.command_field = command_field
        self.implicit = implicit

    def pending(self, counts: Counts) -> None:
        rsp = upper_layer.response(self.command, self.command_field, status.PENDING, counts=counts)
        self.writer.add(self.context_id, True, rsp)
        self.writer.end_message()
        self.writer.flush()

    def final(
        self,
        code: int,
        counts: Counts | None,
        failed_uids: list[str] | None = None,
        comment: str = "",
    ) -> None:
        rsp = upper_layer.response(
            self.command,
            self.command_field,
            code,
            comment,
            has_data_set=bool(failed_uids),
            counts=counts,
        )
        self.writer.add(self.context_id, True, rsp)
        if failed_uids:
            answer = Answer()
            answer.set(_FAILED_SOP_INSTANCE_UID_LIST, "UI", failed_uids)
            self.writer.add(self.context_id, False, answer.encode(self.implicit))
        self.writer.flush()


class RetrieveService:
    """Runs C-MOVE (to known modalities only) and C-GET requests."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.archive = archive
        self.settings = settings

    def move(
        self,
        writer: upper_layer.PduWriter,
        context_id: int,
        command: Command,
        identifier: Dataset,
        implicit: bool,
        stats: AssociationStats,
        cancelled: Callable[[], bool],
    ) -> None:
        """Answer one C-MOVE-RQ completely (pending responses, then the final one)."""
        respond = _Responder(writer, context_id, command, upper_layer.C_MOVE_RSP, implicit)
        modality = self.archive.modalities.by_ae(command.move_destination)
        if modality is None:
            log.warning(
                "C-MOVE from %s to unknown destination %r",
                stats.calling_ae,
                command.move_destination,
            )
            respond.final(status.MOVE_UNKNOWN_DESTINATION, None)
            return
        instances = self._instances_or_answer(respond, identifier, command, stats, "C-MOVE")
        if instances is None:
            return
        log.info(
            "C-MOVE from %s: %d instance(s) to %s (%s:%d)",
            stats.calling_ae,
            len(instances),
            modality.ae_title,
            modality.host,
            modality.port,
        )
        sender = StoreSender(
            self.settings.dimse.ae_title,
            modality.ae_title,
            modality.host,
            modality.port,
            self.settings.dimse.network_timeout,
        )
        try:
            sender.open(instances)
        except DestinationUnavailable as exc:
            log.warning("C-MOVE from %s: %s", stats.calling_ae, exc)
            respond.final(status.MOVE_UNKNOWN_DESTINATION, None, comment=str(exc))
            return
        try:
            assert sender.channel is not None
            self._suboperations(
                sender.channel,
                instances,
                respond,
                stats,
                cancelled,
                originator=(stats.calling_ae, command.message_id),
            )
        finally:
            sender.close()

    def get(
        self,
        writer: upper_layer.PduWriter,
        context_id: int,
        command: Command,
        identifier: Dataset,
        implicit: bool,
        stats: AssociationStats,
        channel: StoreChannel,
        cancelled: Callable[[], bool],
    ) -> None:
        """Answer one C-GET-RQ: C-STOREs back over the same association, then the final."""
        respond = _Responder(writer, context_id, command, upper_layer.C_GET_RSP, implicit)
        instances = self._instances_or_answer(respond, identifier, command, stats, "C-GET")
        if instances is None:
            return
        log.info("C-GET from %s: %d instance(s)", stats.calling_ae, len(instances))
        self._suboperations(channel, instances, respond, stats, cancelled, originator=None)

    def _instances_or_answer(
        self,
        respond: _Responder,
        identifier: Dataset,
        command: Command,
        stats: AssociationStats,
        service: str,
    ) -> list[StoredInstance] | None:
        """The instances to send, or None after answering a failure or an empty match."""
        try:
            instances = instances_to_retrieve(self.archive, identifier, command.sop_class_uid)
        except Exception as exc:
            code = FindService.failure(service, stats, exc)
            respond.final(code, None, comment=str(exc))
            return None
        if not instances:
            respond.final(status.SUCCESS, (0, 0, 0, 0))
            return None
        return instances

    def _suboperations(
        self,
        channel: StoreChannel,
        instances: list[StoredInstance],
        respond: _Responder,
        stats: AssociationStats,
        cancelled: Callable[[], bool],
        originator: tuple[str, int] | None,
    ) -> None:
        completed = warning = 0
        failed_uids: list[str] = []
        outcome = status.SUCCESS
        for number, stored in enumerate(instances):
            if cancelled():
                outcome = status.CANCEL
                failed_uids.extend(s.sop_uid for s in instances[number:])
                break
            result = self._send_one(channel, stored, originator)
            if result is None:  # the association carrying the C-STOREs broke: the rest fail
                failed_uids.extend(s.sop_uid for s in instances[number:])
                break
            if result == status.SUCCESS:
                completed += 1
            elif 0xB000 <= result <= 0xBFFF:
                warning += 1
            else:
                failed_uids.append(stored.sop_uid)
            remaining = len(instances) - number - 1
            if remaining:
                respond.pending((remaining, completed, len(failed_uids), warning))
        stats.retrieved += completed
        if outcome == status.SUCCESS and (failed_uids or warning):
            outcome = status.SUBOPS_WARNING
        respond.final(outcome, (0, completed, len(failed_uids), warning), failed_uids)

    def _send_one(
        self, channel: StoreChannel, stored: StoredInstance, originator: tuple[str, int] | None
    ) -> int | None:
        """The receiver's status for one instance; None when the association is lost."""
        try:
            handle = self.archive.open_instance(stored)
        except Exception as exc:
            log.error("cannot read instance %s for sending: %s", stored.sop_uid, exc)
            return status.UNABLE_TO_PROCESS
        originator_ae, originator_id = originator or ("", 0)
        try:
            with handle:
                return channel.send(stored, handle, originator_ae, originator_id)
        except (OSError, ProtocolError, upper_layer.PeerClosed) as exc:
            log.warning("sending to %s lost its association: %s", channel.peer, exc)
            return None
        except ValueError as exc:  # a stored file that cannot be sent as negotiated
            log.error("cannot send instance %s: %s", stored.sop_uid, exc)
            return status.UNABLE_TO_PROCESS
