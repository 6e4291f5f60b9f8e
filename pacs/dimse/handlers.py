"""DIMSE service handlers: C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET over the Archive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import build_context

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery
from pacs.core.model import StoredInstance
from pacs.dimse import status
from pacs.dimse.find_service import FindService, instances_to_retrieve
from pacs.dimse.store_sender import UNCOMPRESSED, proposals
from pacs.dimse.store_service import AssociationStats, StoreService, storage_refusal
from pacs.dimse.transport import set_nodelay
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")


class DimseHandlers:
    """Binds pynetdicom events to the Archive; each handler logs and never raises."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.archive = archive
        self.settings = settings
        self.store_service = StoreService(archive)
        self.find_service = FindService(archive, settings)
        self.runtime = settings.runtime_settings()
        self._stats: dict[int, AssociationStats] = {}
        self._lock = threading.Lock()

    def handlers(self) -> list[Any]:
        """The (event, handler) pairs to give pynetdicom."""
        return [
            (evt.EVT_CONN_OPEN, self.on_connection_open),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_RELEASED, self.on_ended),
            (evt.EVT_ABORTED, self.on_ended),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_C_GET, self.on_get),
        ]

    # --- association bookkeeping ----------------------------------------------------------

    def _stats_for(self, event: Event) -> AssociationStats:
        key = id(event.assoc)
        with self._lock:
            stats = self._stats.get(key)
            if stats is None:
                requestor = event.assoc.requestor
                stats = AssociationStats(
                    calling_ae=str(requestor.ae_title).strip(),
                    address=f"{requestor.address}:{requestor.port}",
                )
                self._stats[key] = stats
            return stats

    def on_connection_open(self, event: Event) -> None:
        set_nodelay(event.assoc)

    def on_established(self, event: Event) -> None:
        self._stats_for(event).log_accepted(id(event.assoc))

    def on_rejected(self, event: Event) -> None:
        requestor = event.assoc.requestor
        log.warning(
            "association rejected from %s (%s:%s)",
            str(requestor.ae_title).strip(),
            requestor.address,
            requestor.port,
        )

    def on_ended(self, event: Event) -> None:
        with self._lock:
            stats = self._stats.pop(id(event.assoc), None)
        if stats is None:
            return
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        stats.log_ended(id(event.assoc), how)

    # --- C-ECHO and C-STORE ---------------------------------------------------------------

    def on_echo(self, event: Event) -> int:
        return status.SUCCESS

    def on_store(self, event: Event) -> int | Dataset:
        stats = self._stats_for(event)
        request: Any = event.request
        sop_uid = str(request.AffectedSOPInstanceUID)
        refusal = storage_refusal(
            self.runtime.current(),
            str(event.context.abstract_syntax),
            str(event.context.transfer_syntax),
        )
        if refusal:  # what the fast path refuses at negotiation, refused per C-STORE here
            stats.failed += 1
            log.warning("C-STORE of %s from %s refused: %s", sop_uid, stats.calling_ae, refusal)
            answer = Dataset()
            answer.Status = status.SOP_CLASS_NOT_SUPPORTED
            answer.ErrorComment = refusal[:64]
            return answer
        try:
            raw = event.encoded_dataset(include_meta=True)
        except Exception as exc:
            code, comment = self.store_service.failure(stats, sop_uid, exc)
        else:
            code, comment = self.store_service.store(
                raw, stats, str(request.AffectedSOPClassUID), sop_uid
            )
        if code == status.SUCCESS:
            return code
        answer = Dataset()
        answer.Status = code
        answer.ErrorComment = comment
        return answer

    # --- C-FIND ---------------------------------------------------------------------------

    def _identifier(self, event: Event) -> Dataset:
        try:
            identifier: Dataset = event.identifier
        except Exception as exc:
            raise InvalidQuery(f"cannot decode the identifier: {exc}") from None
        return identifier

    def on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        stats = self._stats_for(event)
        try:
            answers = self.find_service.find(
                self._identifier(event), str(event.request.AffectedSOPClassUID), stats
            )
        except Exception as exc:
            yield self._query_failure("C-FIND", stats, exc), None
            return
        for answer in answers:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            yield status.PENDING, answer.to_dataset()

    def _query_failure(self, service: str, stats: AssociationStats, error: Exception) -> int:
        return self.find_service.failure(service, stats, error)

    # --- C-MOVE and C-GET ------------------------------------------------------------------

    def _instances(self, event: Event) -> list[StoredInstance]:
        return instances_to_retrieve(
            self.archive, self._identifier(event), str(event.request.AffectedSOPClassUID)
        )

    def _dataset(self, stored: StoredInstance) -> Dataset:
        path = self.archive.instance_path(stored)
        if path is not None:
            return dcmread(path)
        with self.archive.open_instance(stored) as handle:
            return dcmread(handle)

    def _send_all(
        self,
        event: Event,
        stats: AssociationStats,
        instances: list[StoredInstance],
        takes: set[tuple[str, str]],
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Each instance as a pending result; compressed ones the receiving peer cannot take
        as stored (``takes``: the pairs it accepted) are decoded."""
        for stored in instances:
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            try:
                dataset = self._dataset(stored)
                if _needs_decoding(stored, takes):
                    log.info(
                        "peer takes no %s for %s: sending it decompressed",
                        stored.transfer_syntax,
                        stored.sop_uid,
                    )
                    dataset.decompress(generate_instance_uid=False)
            except Exception as exc:
                log.error("cannot read instance %s for sending: %s", stored.sop_uid, exc)
                failed = Dataset()
                failed.SOPInstanceUID = stored.sop_uid  # counted as a failed sub-operation
                yield status.PENDING, failed
                continue
            stats.retrieved += 1
            yield status.PENDING, dataset

    def on_move(self, event: Event) -> Iterator[Any]:
        stats = self._stats_for(event)
        destination_ae = event.move_destination
        destination_title = (
            destination_ae.decode("ascii", "replace")
            if isinstance(destination_ae, bytes)
            else str(destination_ae)
        ).strip()
        modality = self.archive.modalities.by_ae(destination_title)
        if modality is None:
            log.warning(
                "C-MOVE from %s to unknown destination %r", stats.calling_ae, destination_title
            )
            yield None, None  # pynetdicom answers 0xA801 (move destination unknown)
            return
        destination = (modality.host, modality.port)
        try:
            instances = self._instances(event)
        except Exception as exc:
            # pynetdicom wants the destination and a count before a failure status.
            yield destination
            yield 1
            yield self._query_failure("C-MOVE", stats, exc), None
            return
        log.info(
            "C-MOVE from %s: %d instance(s) to %s (%s:%d)",
            stats.calling_ae,
            len(instances),
            modality.ae_title,
            modality.host,
            modality.port,
        )
        opened: list[Association] = []  # the association pynetdicom opens to the destination

        def on_destination_open(open_event: Event) -> None:
            opened.append(open_event.assoc)
            self.on_connection_open(open_event)

        yield (
            *destination,
            {
                "contexts": storage_contexts(instances),
                "evt_handlers": [(evt.EVT_CONN_OPEN, on_destination_open)],
            },
        )
        yield len(instances)  # pynetdicom associates before resuming here
        yield from self._send_all(event, stats, instances, _storage_takes(opened[-1]))

    def on_get(self, event: Event) -> Iterator[Any]:
        stats = self._stats_for(event)
        try:
            instances = self._instances(event)
        except Exception as exc:
            # Failing the sub-operation count makes pynetdicom answer 0xC413 (unable to
            # process) without an identifier, which DCMTK's getscu handles cleanly.
            self._query_failure("C-GET", stats, exc)
            raise

        log.info("C-GET from %s: %d instance(s)", stats.calling_ae, len(instances))
        yield len(instances)
        yield from self._send_all(event, stats, instances, _storage_takes(event.assoc))


def _storage_takes(assoc: Association) -> set[tuple[str, str]]:
    """The (SOP class, transfer syntax) pairs a peer accepted to receive C-STOREs in: the
    C-GET requestor's SCP-role contexts, or the C-MOVE destination's contexts."""
    return {
        (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
        for cx in assoc.accepted_contexts
        if cx.as_scu
    }


def _needs_decoding(stored: StoredInstance, takes: set[tuple[str, str]]) -> bool:
    """A compressed instance whose stored syntax the peer did not accept, but an
    uncompressed one: sent decompressed rather than failed."""
    return (
        stored.transfer_syntax not in UNCOMPRESSED
        and (stored.sop_class_uid, stored.transfer_syntax) not in takes
        and any((stored.sop_class_uid, syntax) in takes for syntax in UNCOMPRESSED)
    )


def storage_contexts(instances: list[StoredInstance]) -> list[Any]:
    """Presentation contexts to send these instances: each stored syntax, plus uncompressed."""
    return [build_context(sop_class, syntaxes) for sop_class, syntaxes in proposals(instances)]
