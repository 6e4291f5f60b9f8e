"""C-MOVE for the fast path: find the instances, send them with the lean Storage SCU, and
report pending and final sub-operation counts (PS3.4 C.4.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydicom.dataset import Dataset

from pacs.core.answer import Answer
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery
from pacs.core.model import StoredInstance
from pacs.dimse import status, upper_layer
from pacs.dimse.find_service import FindService, query_for
from pacs.dimse.store_sender import DestinationUnavailable, StoreSender
from pacs.dimse.store_service import AssociationStats
from pacs.dimse.upper_layer import Command, ProtocolError
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")

_FAILED_SOP_INSTANCE_UID_LIST = 0x00080058


class MoveService:
    """Runs C-MOVE requests; the destination must be one of the configured modalities."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.archive = archive
        self.settings = settings

    def _instances(self, identifier: Dataset, sop_class: str) -> list[StoredInstance]:
        query = query_for(identifier, sop_class)
        if not query.filters:
            raise InvalidQuery("a retrieve needs at least one key value")
        return self.archive.instances_matching(query)

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

        def final(
            code: int,
            counts: tuple[int, int, int, int] | None,
            failed_uids: list[str] | None = None,
            comment: str = "",
        ) -> None:
            rsp = upper_layer.move_response(command, code, counts, bool(failed_uids), comment)
            writer.add(context_id, True, rsp)
            if failed_uids:
                answer = Answer()
                answer.set(_FAILED_SOP_INSTANCE_UID_LIST, "UI", failed_uids)
                writer.add(context_id, False, answer.encode(implicit))
            writer.flush()

        modality = self.settings.modality_by_ae(command.move_destination)
        if modality is None:
            log.warning(
                "C-MOVE from %s to unknown destination %r",
                stats.calling_ae,
                command.move_destination,
            )
            final(status.MOVE_UNKNOWN_DESTINATION, None)
            return
        try:
            instances = self._instances(identifier, command.sop_class_uid)
        except Exception as exc:
            code = FindService.failure("C-MOVE", stats, exc)
            final(code, None, comment=str(exc)[:64])
            return
        log.info(
            "C-MOVE from %s: %d instance(s) to %s (%s:%d)",
            stats.calling_ae,
            len(instances),
            modality.ae_title,
            modality.host,
            modality.port,
        )
        if not instances:
            final(status.SUCCESS, (0, 0, 0, 0))
            return
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
            final(status.MOVE_UNKNOWN_DESTINATION, None, comment=str(exc)[:64])
            return
        completed = warning = 0
        failed_uids: list[str] = []
        outcome = status.SUCCESS
        try:
            for number, stored in enumerate(instances):
                if cancelled():
                    outcome = status.CANCEL
                    failed_uids.extend(s.sop_uid for s in instances[number:])
                    break
                result = self._send_one(sender, stored, stats, command)
                if result is None:  # the destination association broke: the rest fail
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
                    counts = (remaining, completed, len(failed_uids), warning)
                    pending = upper_layer.move_response(command, status.PENDING, counts)
                    writer.add(context_id, True, pending)
                    writer.end_message()
                    writer.flush()
        finally:
            sender.close()
        stats.retrieved += completed
        if outcome == status.SUCCESS and (failed_uids or warning):
            outcome = status.SUBOPS_WARNING
        final(outcome, (0, completed, len(failed_uids), warning), failed_uids)

    def _send_one(
        self, sender: StoreSender, stored: StoredInstance, stats: AssociationStats, command: Command
    ) -> int | None:
        """The destination's status for one instance; None when the association is lost."""
        try:
            handle = self.archive.open_instance(stored)
        except Exception as exc:
            log.error("cannot read instance %s for sending: %s", stored.sop_uid, exc)
            return status.UNABLE_TO_PROCESS
        try:
            with handle:
                return sender.send(stored, handle, stats.calling_ae, command.message_id)
        except (OSError, ProtocolError, upper_layer.PeerClosed) as exc:
            log.warning("C-MOVE to %s lost its association: %s", sender.called_ae, exc)
            return None
        except ValueError as exc:  # a stored file that cannot be sent as negotiated
            log.error("cannot send instance %s: %s", stored.sop_uid, exc)
            return status.UNABLE_TO_PROCESS
