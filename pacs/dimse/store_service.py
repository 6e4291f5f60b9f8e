"""What a C-STORE does, shared by the pynetdicom handlers and the storage fast path."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom.uid import UID
from pynetdicom.sop_class import uid_to_service_class

from pacs.core.archive import Archive
from pacs.core.errors import PacsError
from pacs.core.model import StoreOutcome
from pacs.core.runtime_settings import RuntimeValues
from pacs.core.store_status import store_failure_status
from pacs.dimse import status

log = logging.getLogger("pacs.dimse")


@dataclass
class AssociationStats:
    """What one association did, logged when it ends."""

    calling_ae: str
    address: str
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    finds: int = 0
    retrieved: int = 0

    def log_accepted(self, association_id: int) -> None:
        log.info(
            "association %x accepted from %s (%s)", association_id, self.calling_ae, self.address
        )

    def log_ended(self, association_id: int, how: str) -> None:
        log.info(
            "association %x from %s %s: stored %d, duplicates %d, failed %d, queries %d, sent %d",
            association_id,
            self.calling_ae,
            how,
            self.stored,
            self.duplicates,
            self.failed,
            self.finds,
            self.retrieved,
        )


def is_unknown_sop_class(sop_class_uid: str) -> bool:
    """A SOP class pynetdicom does not know (private ones): Orthanc's "unknown SOP class"."""
    return uid_to_service_class(UID(sop_class_uid)).__name__ == "ServiceClass"


def storage_refusal(values: RuntimeValues, sop_class_uid: str, transfer_syntax: str) -> str:
    """Why the runtime settings (``/tools/accepted-transfer-syntaxes``,
    ``/tools/unknown-sop-class-accepted``) refuse storage in this context; '' if they don't."""
    if not values.accepts_transfer_syntax(transfer_syntax):
        return f"transfer syntax {transfer_syntax} is not accepted"
    if not values.unknown_sop_class_accepted and is_unknown_sop_class(sop_class_uid):
        return f"unknown SOP class {sop_class_uid} is not accepted"
    return ""


class StoreService:
    """Stores one received data set and answers with a DIMSE status and comment."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def store(
        self, part10: bytes, stats: AssociationStats, sop_class_uid: str, sop_uid: str
    ) -> tuple[int, str]:
        """Keep the Part 10 bytes; (status, error comment) for the C-STORE-RSP."""
        try:
            result = self.archive.store(
                part10,
                origin=f"DIMSE:{stats.calling_ae}",
                expected_sop_class=sop_class_uid,
                expected_sop_uid=sop_uid,
            )
        except Exception as exc:
            return self.failure(stats, sop_uid, exc)
        if result.outcome == StoreOutcome.DUPLICATE_IGNORED:
            stats.duplicates += 1
        else:
            stats.stored += 1
        return status.SUCCESS, ""

    @staticmethod
    def failure(stats: AssociationStats, sop_uid: str, error: Exception) -> tuple[int, str]:
        """Count, log and map a refused or failed C-STORE."""
        stats.failed += 1
        code = store_failure_status(error)
        if isinstance(error, PacsError):
            log.warning(
                "C-STORE of %s from %s refused (0x%04X): %s", sop_uid, stats.calling_ae, code, error
            )
        else:
            log.exception("C-STORE of %s from %s failed (0x%04X)", sop_uid, stats.calling_ae, code)
        return code, (str(error)[:64] or type(error).__name__)
