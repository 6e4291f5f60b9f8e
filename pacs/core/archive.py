"""The Archive facade: every door stores, finds and opens instances through it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset

from pacs.core.ai_jobs import AiQueue, AiQueuePolicy
from pacs.core.ai_results import AiResults
from pacs.core.answer import Answer
from pacs.core.charsets import LATIN1, CharsetSource
from pacs.core.dicom_header import summarize
from pacs.core.errors import NotFound, PacsError, StorageUnavailable
from pacs.core.group_commit import GroupCommitter
from pacs.core.index.db import Database
from pacs.core.index.deletion import Audit, Deletion, delete_resource
from pacs.core.index.holds import LegalHolds
from pacs.core.index.labels import LabelIndex
from pacs.core.index.modalities import ModalityRegistry
from pacs.core.index.reconstruct import reindex
from pacs.core.index.resources import ResourceIndex
from pacs.core.index.sql_index import AddResult, PendingAdd, SqlIndex
from pacs.core.ingest import Ingest, StoreResult
from pacs.core.model import Level, StoredInstance
from pacs.core.query import Query
from pacs.core.remote import RemoteModality
from pacs.core.responses import build_answers, filter_records
from pacs.core.tiering.ledger import TierLedger
from pacs.core.tiering.reads import TierReads
from pacs.core.tiering.status import storage_status
from pacs.core.trash import Trash
from storage import BlobNotFound, BlobStore, BlobStoreUnavailable

log = logging.getLogger(__name__)


class Archive:
    """Store, find, and open instances; owns the index writer thread."""

    def __init__(
        self,
        index: SqlIndex,
        blobs: BlobStore,
        *,
        duplicate_policy: str = "ignore",
        max_pixels: int = 0,
        batch_max: int = 64,
        ai_policy: AiQueuePolicy | None = None,
        modalities: Sequence[RemoteModality] = (),
        deletion_grace_days: float = 30.0,
        tiers: TierReads | None = None,
        text_charset: CharsetSource = lambda: LATIN1,
    ) -> None:
        self.index = index
        # The Specific Character Set assumed now for data sets declaring none (a runtime
        # setting): ingest indexes their names with it, the doors show their headers with it.
        self.text_charset = text_charset
        self.deletion_grace = max(deletion_grace_days, 0.0) * 86400  # seconds in the trash
        self.blobs = blobs
        self.tiers = tiers  # None: one store, read as before
        self.hot_capacity_bytes = 0  # for the hot tier's fill level (0: its filesystem's size)
        self.ai_queue = AiQueue(index.database)
        self.ai_results = AiResults(index.database)
        self.ai_policy_enabled = ai_policy is not None
        self.resources = ResourceIndex(index.database)  # reads by public id
        self.labels = LabelIndex(index.database)
        self.modalities = ModalityRegistry(index.database, modalities)  # remote AEs
        self.holds = LegalHolds(index.database)
        self.trash = Trash(index, blobs, self._current_charset)  # deletions: audit, restore, purge
        self._writer_conn = index.database.connect()
        self._committer: GroupCommitter[PendingAdd, AddResult] = GroupCommitter(
            self._write_batch, batch_max=batch_max
        )
        self._ingest = Ingest(
            index,
            blobs,
            self._committer,
            duplicate_policy=duplicate_policy,
            max_pixels=max_pixels,
            ai_policy=ai_policy,
            text_charset=self._current_charset,
        )

    def _current_charset(self) -> str:
        """``text_charset()``, looked up at each call (tests and tools may replace it)."""
        return self.text_charset()

    def _write_batch(self, batch: Sequence[PendingAdd]) -> list[AddResult | Exception]:
        """The group-commit step: make the batch's blobs durable, then index them at once."""
        self.blobs.sync()
        return self.index.add_batch(self._writer_conn, batch)

    @classmethod
    def open(cls, index_url: str, blobs: BlobStore, **options: Any) -> Archive:
        """Connect to the index at ``index_url``, migrate it, and build the archive."""
        index = SqlIndex(Database(index_url))
        index.initialize()
        return cls(index, blobs, **options)

    def store(
        self, raw: bytes, origin: str, *, expected_sop_class: str = "", expected_sop_uid: str = ""
    ) -> StoreResult:
        """Keep one Part 10 file (or bare data set); durable when this returns."""
        return self._ingest.store(
            raw, origin, expected_sop_class=expected_sop_class, expected_sop_uid=expected_sop_uid
        )

    def find(self, query: Query) -> list[Dataset]:
        """Answers to a query, one Dataset per match with the requested return keys."""
        return [answer.to_dataset() for answer in self.find_answers(query)]

    def find_answers(self, query: Query) -> list[Answer]:
        """Answers to a query as plain values (cheaper than Datasets for long lists)."""
        records, python_filters = self.index.find(query)
        return build_answers(self.index, query, records, python_filters, self.text_charset())

    def instances_matching(self, query: Query) -> list[StoredInstance]:
        """Every stored instance below the entities a query matches (for C-MOVE, C-GET)."""
        unlimited = Query(level=query.level, filters=query.filters, kinds=query.kinds)
        records, python_filters = self.index.find(unlimited)
        records = filter_records(
            self.index, unlimited, records, python_filters, self.text_charset()
        )
        return self.index.instances_under(query.level, [r.pks[query.level] for r in records])

    def series_instances(self, series_uid: str) -> list[StoredInstance]:
        """Every instance of one series, in instance-number order."""
        return self.index.series_instances(series_uid)

    def instance_headers(self, instances: Sequence[StoredInstance]) -> dict[str, bytes]:
        """Each instance's header as kept by the index (Part 10 bytes before Pixel Data);
        an instance whose header was too large to keep is read from its blob."""
        headers = self.index.instance_headers([stored.sop_uid for stored in instances])
        for stored in instances:
            if not headers.get(stored.sop_uid):
                headers[stored.sop_uid] = self.read_instance(stored)
        return headers

    def instance(self, sop_uid: str) -> StoredInstance:
        """Where one instance is stored (raises NotFound)."""
        return self.index.get_instance(sop_uid)

    def open_instance(self, stored: StoredInstance) -> BinaryIO:
        """The stored Part 10 bytes of an instance, for reading (StorageUnavailable when
        the tier holding it cannot be reached)."""
        if self.tiers is None:
            return self.blobs.open(stored.blob_key)
        try:
            try:
                return self.tiers.open(stored)
            except BlobNotFound:
                current = self.index.get_instance(stored.sop_uid)
                if current.blob_key == stored.blob_key:
                    raise
                return self.tiers.open(current)  # moved to another tier meanwhile
        except BlobStoreUnavailable as exc:
            raise StorageUnavailable(
                f"instance {stored.sop_uid} is on storage tier {stored.tier!r}, "
                f"which cannot be reached: {exc}"
            ) from exc

    def instance_path(self, stored: StoredInstance) -> Path | None:
        """A local file path of the instance when the blob store has one (with tiers: when
        a local tier holds it now; otherwise None, and callers read it with open_instance)."""
        if self.tiers is None:
            return self.blobs.local_path(stored.blob_key)
        return self.tiers.path(stored)

    def read_instance(self, stored: StoredInstance) -> bytes:
        """The whole stored Part 10 file."""
        try:
            with self.open_instance(stored) as handle:
                return handle.read()
        except BlobNotFound:
            log.error("instance %s: blob %s is missing", stored.sop_uid, stored.blob_key)
            raise

    def delete(
        self,
        level: Level,
        public_id: str,
        *,
        who: str = "system",
        door: str = "api",
        reason: str = "",
        hard: bool = False,
    ) -> Deletion:
        """Delete a patient, study, series or instance (by public id) with everything below
        it, recorded in ``deletions`` (who, door, reason). Its instances go to the trash,
        blobs kept, for ``deletion_grace_days`` (restorable with ``trash.restore``); with a
        grace of 0 (or ``hard``) the blobs are deleted after the transaction commits, and a
        blob that cannot be deleted is logged and left behind (an orphan file, never a
        dangling row). Raises NotFound, or OnLegalHold when a study it touches is held."""
        grace = 0.0 if hard else self.deletion_grace
        with self.index.database.reader() as conn:  # a pooled connection; its own transaction
            deletion = delete_resource(conn, level, public_id, Audit(who, door, reason, grace))
        for key in deletion.blob_keys:
            try:
                self.blobs.delete(key)
            except Exception as exc:  # the index no longer refers to it: an orphan, logged
                log.error("deleted %s %s: blob %s left behind: %s", level.name, public_id, key, exc)
        log.info(
            "%s deleted %s %s via %s (%d instances, %s; deletion %d)",
            who,
            level.name,
            public_id,
            door,
            deletion.instances,
            "to the trash" if grace > 0 else "hard",
            deletion.deletion_id,
        )
        return deletion

    def reconstruct(self, level: Level, public_id: str) -> int:
        """Read the indexed attributes of a resource's instances again from their stored
        headers, with the current default character set (Orthanc's ``/reconstruct``);
        returns how many instances were re-read. Raises NotFound."""
        resource = self.resources.get(level, public_id)
        if level == Level.PATIENT:
            studies = self.resources.descendants(level, resource.pk, Level.STUDY)
            instances = self.index.instances_under(Level.STUDY, [s.pk for s in studies])
        else:
            instances = self.index.instances_under(level, [resource.pk])
        headers = self.instance_headers(instances)
        charset = self.text_charset()
        summaries = []
        for stored in instances:
            try:
                summaries.append(summarize(headers[stored.sop_uid], charset=charset)[0])
            except PacsError as exc:  # indexed once, so this is unexpected: keep the row
                log.warning("reconstruct: %s left as indexed: %s", stored.sop_uid, exc)
        with self.index.database.reader() as conn, conn.transaction():
            return reindex(conn, summaries)

    def reconstruct_all(self) -> int:
        """:meth:`reconstruct` of every study, one transaction each."""
        total = 0
        for study in self.resources.public_ids(Level.STUDY):
            try:
                total += self.reconstruct(Level.STUDY, study)
            except NotFound:
                continue  # deleted meanwhile
        return total

    def statistics(self) -> dict[str, int]:
        """Counts and total size."""
        return self.index.statistics()

    def storage_status(self) -> dict[str, Any]:
        """Per-tier objects, bytes and free space, growth per day, requested moves."""
        return storage_status(
            TierLedger(self.index.database), self.blobs, hot_capacity_bytes=self.hot_capacity_bytes
        )

    def last_change_time(self) -> float:
        """When anything was last stored or changed (epoch seconds; 0 when never)."""
        return self.index.last_change_time()

    def last_activity_time(self) -> float:
        """When a store last began or ended in this process, or the change feed last grew
        (epoch seconds): the sign background work reads to step aside for ingest."""
        return max(self._ingest.last_store_time, self.index.last_change_time())

    def changes(self, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The change feed."""
        return self.index.changes(since, limit)

    def close(self) -> None:
        """Flush pending index writes and close connections."""
        self._committer.close()
        if self.tiers is not None:
            self.tiers.close()
        self.index.database.close()
