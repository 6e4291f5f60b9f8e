"""What a C-FIND does, shared by the pynetdicom handlers and the fast path."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pydicom.uid import UID

from pacs.core.answer import Answer
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, PacsError
from pacs.core.model import Level, StoredInstance
from pacs.core.query import Query, query_from_identifier
from pacs.dimse import status
from pacs.dimse.store_service import AssociationStats
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2"
PATIENT_STUDY_ONLY = "1.2.840.10008.5.1.4.1.2.3"
FIND_SOP_CLASSES = frozenset(f"{root}.1" for root in (PATIENT_ROOT, STUDY_ROOT, PATIENT_STUDY_ONLY))
GET_SOP_CLASSES = frozenset(f"{root}.3" for root in (PATIENT_ROOT, STUDY_ROOT, PATIENT_STUDY_ONLY))
MOVE_SOP_CLASSES = frozenset(f"{root}.2" for root in (PATIENT_ROOT, STUDY_ROOT, PATIENT_STUDY_ONLY))
_RETRIEVE_AE_TITLE = 0x00080054


def allowed_levels(sop_class: str) -> set[Level]:
    """Which levels a Query/Retrieve information model allows (PS3.4 C.6)."""
    if sop_class.startswith(STUDY_ROOT + "."):
        return {Level.STUDY, Level.SERIES, Level.IMAGE}
    if sop_class.startswith(PATIENT_STUDY_ONLY + "."):
        return {Level.PATIENT, Level.STUDY}
    return set(Level)


def query_for(identifier: Dataset, sop_class: str) -> Query:
    """The Query an identifier asks for, checked against the information model."""
    query = query_from_identifier(identifier)
    if query.level not in allowed_levels(sop_class):
        raise InvalidQuery(f"level {query.level.name} is not part of {UID(sop_class).name}")
    return query


def instances_to_retrieve(
    archive: Archive, identifier: Dataset, sop_class: str
) -> list[StoredInstance]:
    """The instances a C-MOVE or C-GET identifier selects (it must select something)."""
    query = query_for(identifier, sop_class)
    if not query.filters:
        raise InvalidQuery("a retrieve needs at least one key value")
    return archive.instances_matching(query)


class FindService:
    """Runs C-FIND identifiers against the Archive and logs the outcome."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.archive = archive
        self.settings = settings

    def find(self, identifier: Dataset, sop_class: str, stats: AssociationStats) -> list[Answer]:
        """The answers, at most ``max_find_results``; raises PacsError on a bad identifier."""
        stats.finds += 1
        query = query_for(identifier, sop_class)
        limit = self.settings.dimse.max_find_results
        if limit:
            query = Query(
                level=query.level,
                filters=query.filters,
                return_keys=query.return_keys,
                kinds=query.kinds,
                limit=limit,
            )
        answers = self.archive.find_answers(query)
        if "RetrieveAETitle" in query.return_keys:
            for answer in answers:
                answer.set(_RETRIEVE_AE_TITLE, "AE", self.settings.dimse.ae_title)
        log.info(
            "C-FIND %s from %s: %d match(es)", query.level.name, stats.calling_ae, len(answers)
        )
        return answers

    @staticmethod
    def failure(service: str, stats: AssociationStats, error: Exception) -> int:
        """Log a refused or failed query/retrieve and map it to its DIMSE status."""
        code = status.query_status(error)
        if isinstance(error, PacsError):
            log.warning("%s from %s refused (0x%04X): %s", service, stats.calling_ae, code, error)
        else:
            log.exception("%s from %s failed (0x%04X)", service, stats.calling_ae, code)
        return code
