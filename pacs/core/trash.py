"""The trash: restore a deletion (index its instances again from their kept headers, same
blobs, same digests) or purge it (delete the blobs, keep the audit row).

Both work in short batches and can be interrupted anywhere: a restore resumes from the
instances still in the trash; a purge deletes a batch's blobs, then their trash rows, so an
interrupted purge leaves rows whose blob may already be gone (the deletion stays
``purging``, which cannot be restored) and the next purge finishes them. A tier that cannot
be reached stops the purge of that deletion at the first blob it holds (the rows of the
blobs deleted before it are dropped, the others kept), and the next purge resumes it. Held
studies are never purged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pacs.core.charsets import LATIN1, CharsetSource
from pacs.core.dicom_header import summarize
from pacs.core.errors import Conflict, OnLegalHold, PacsError, StorageUnavailable
from pacs.core.index import deleted_ai
from pacs.core.index import trash as rows
from pacs.core.index.db import Database
from pacs.core.index.find_sql import TABLE
from pacs.core.index.sql_index import PendingAdd, SqlIndex
from pacs.core.model import InstanceSummary, Level, StoreOutcome
from storage import BlobStore, BlobStoreUnavailable

log = logging.getLogger(__name__)

_BATCH = 200


@dataclass
class RestoreResult:
    """What a restore brought back (instances, AI results), and what it skipped (SOP
    Instance UID -> why)."""

    deletion_id: int
    restored: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    ai_results: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "deletion": self.deletion_id,
            "restored": self.restored,
            "skipped": self.skipped,
            "ai_results": self.ai_results,
        }


@dataclass
class PurgeResult:
    """What a purge deleted, the deletions it left alone because of a hold, and those it
    stopped because a tier holding their blobs could not be reached (still ``purging``)."""

    purged: list[int] = field(default_factory=list)
    blobs_deleted: int = 0
    held: dict[int, str] = field(default_factory=dict)
    unavailable: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "purged": self.purged,
            "blobs_deleted": self.blobs_deleted,
            "held": {str(k): v for k, v in self.held.items()},
            "unavailable": {str(k): v for k, v in self.unavailable.items()},
        }


class Trash:
    """Deletions and their trash: list, restore, purge."""

    def __init__(
        self, index: SqlIndex, blobs: BlobStore, text_charset: CharsetSource = lambda: LATIN1
    ) -> None:
        self.index = index
        self.database: Database = index.database
        self.blobs = blobs
        self.text_charset = text_charset  # restored headers are indexed as at ingest

    def deletions(self, state: str = "", limit: int = 100, before: int = 0) -> list[dict[str, Any]]:
        """Deletions, newest first."""
        with self.database.reader() as conn:
            return rows.list_deletions(conn, state, limit, before)

    def get(self, deletion_id: int) -> dict[str, Any]:
        """One deletion (NotFound if none)."""
        with self.database.reader() as conn:
            return rows.get_deletion(conn, deletion_id)

    # --- restore ---------------------------------------------------------------------------

    def restore(self, deletion_id: int, who: str) -> RestoreResult:
        """Bring back every instance of the deletion still in the trash (Conflict once it is
        being purged or purged). An instance stored again meanwhile is skipped: the newer
        copy wins, the trashed one stays in the trash until the grace period ends."""
        with self.database.reader() as conn, conn.transaction():
            rows.move_state(conn, deletion_id, ("trash", "restoring"), "restoring")
        result = RestoreResult(deletion_id)
        after = 0
        while True:
            with self.database.reader() as conn:
                batch = rows.pending_instances(conn, deletion_id, after, _BATCH)
            if not batch:
                break
            prepared = [(entry, self._summary(entry)) for entry in batch]
            self._restore_batch(prepared, result)
            after = batch[-1].pk
        with self.database.reader() as conn, conn.transaction():
            self._restore_labels(conn, deletion_id)
            result.ai_results = deleted_ai.restore(conn, deletion_id)
            rows.finish_restore(conn, deletion_id, who)
        log.warning(
            "%s restored deletion %d: %d instances, %d skipped",
            who,
            deletion_id,
            result.restored,
            len(result.skipped),
        )
        return result

    def _summary(self, entry: rows.TrashedInstance) -> InstanceSummary | str:
        """The instance's summary from its kept header (or its blob); a reason if neither."""
        try:
            if not self.blobs.exists(entry.blob_key):
                return f"blob {entry.blob_key} is missing"
            if entry.header:
                raw = entry.header
            else:
                with self.blobs.open(entry.blob_key) as handle:
                    raw = handle.read()
        except BlobStoreUnavailable as exc:  # not "missing": the restore stops, retry later
            raise StorageUnavailable(
                f"restore stopped: blob {entry.blob_key} is on a tier that cannot be reached "
                f"({exc}); the deletion stays restorable: try again once the tier is back"
            ) from exc
        try:
            return summarize(raw, charset=self.text_charset())[0]
        except (PacsError, OSError, ValueError) as exc:
            return f"cannot read the kept header: {exc}"

    def _restore_batch(
        self,
        prepared: list[tuple[rows.TrashedInstance, InstanceSummary | str]],
        result: RestoreResult,
    ) -> None:
        """One transaction: each instance indexed again (its own savepoint) and its trash row
        dropped, or noted as skipped."""
        skipped: dict[int, str] = {}
        restored = 0
        with self.database.reader() as conn, conn.transaction():
            for entry, summary in prepared:
                if isinstance(summary, str):
                    skipped[entry.pk] = summary
                    continue
                if conn.execute("SELECT 1 FROM instances WHERE sop_uid = ?", (entry.sop_uid,)):
                    skipped[entry.pk] = "a newer copy of this instance is stored"
                    continue
                if entry.header:  # the index keeps the header exactly as ingest cut it
                    summary = _with_header(summary, entry.header)
                item = PendingAdd(
                    summary, entry.blob_key, entry.size, entry.sha256, entry.origin, "ignore"
                )
                conn.execute("SAVEPOINT restore_item")
                try:
                    outcome = self.index.restore_one(
                        conn, item, entry.received_at, entry.tier, entry.original_size
                    ).outcome
                except PacsError as exc:
                    conn.execute("ROLLBACK TO SAVEPOINT restore_item")
                    conn.execute("RELEASE SAVEPOINT restore_item")
                    skipped[entry.pk] = str(exc)
                    continue
                conn.execute("RELEASE SAVEPOINT restore_item")
                if outcome != StoreOutcome.STORED:
                    skipped[entry.pk] = f"not restored ({outcome.name})"
                    continue
                conn.execute("DELETE FROM deleted_instances WHERE pk = ?", (entry.pk,))
                restored += 1
            conn.execute_many(
                "UPDATE deleted_instances SET note = ? WHERE pk = ?",
                [(f"skipped: {why}", pk) for pk, why in skipped.items()],
            )
        result.restored += restored
        by_pk = {entry.pk: entry.sop_uid for entry, _ in prepared}
        result.skipped.update({by_pk[pk]: why for pk, why in skipped.items()})

    @staticmethod
    def _restore_labels(conn: Any, deletion_id: int) -> None:
        """Labels the deletion took away, on the resources that are back."""
        record = rows.get_deletion(conn, deletion_id)
        for level_name, public_id, label in record["labels"]:
            level = Level[level_name]
            found = conn.execute(f"SELECT pk FROM {TABLE[level]} WHERE public_id = ?", (public_id,))
            if found:
                table = {
                    Level.PATIENT: "patient_labels",
                    Level.STUDY: "study_labels",
                    Level.SERIES: "series_labels",
                    Level.IMAGE: "instance_labels",
                }[level]
                conn.execute(
                    f"INSERT INTO {table} (resource_pk, label) VALUES (?, ?) "
                    "ON CONFLICT (resource_pk, label) DO NOTHING",
                    (int(found[0][0]), label),
                )

    # --- purge -----------------------------------------------------------------------------

    def purge(
        self, deletion_id: int | None = None, *, expired_only: bool = True, now: float | None = None
    ) -> PurgeResult:
        """Delete the blobs of deletions whose grace period is over (or of one deletion,
        even before, with ``expired_only=False``); held ones are left alone, and one whose
        blobs are on a tier that cannot be reached stays ``purging`` (StorageUnavailable for
        the one deletion asked for; noted in the result and logged otherwise)."""
        result = PurgeResult()
        now = time.time() if now is None else now
        if deletion_id is None:
            with self.database.reader() as conn:
                candidates = rows.purgeable(conn, now)
        else:
            record = self.get(deletion_id)
            if expired_only and record["purge_after"] > now:
                raise Conflict(f"deletion {deletion_id} is in its grace period")
            if record["state"] in ("restoring",):
                raise Conflict(f"deletion {deletion_id} is being restored")
            candidates = [deletion_id]
        for candidate in candidates:
            try:
                result.blobs_deleted += self._purge_one(candidate)
                result.purged.append(candidate)
            except OnLegalHold as exc:
                result.held[candidate] = str(exc)
                if deletion_id is not None:
                    raise
            except StorageUnavailable as exc:
                log.error("%s", exc)
                result.unavailable[candidate] = str(exc)
                if deletion_id is not None:
                    raise
        return result

    def _purge_one(self, deletion_id: int) -> int:
        deleted = 0
        with self.database.reader() as conn, conn.transaction():
            self._refuse_if_held(conn, deletion_id)
            rows.move_state(
                conn, deletion_id, ("trash", "purging", "restored", "purged"), "purging"
            )
        state_restored = self.get(deletion_id)["restored_at"] is not None
        while True:
            with self.database.reader() as conn:
                self._refuse_if_held(conn, deletion_id)
                batch = rows.trash_blobs(conn, deletion_id, _BATCH)
            if not batch:
                break
            done = 0
            try:
                for _, key in batch:
                    self.blobs.delete(key)  # a missing blob is not an error: resumable
                    done += 1
            except BlobStoreUnavailable as exc:
                self._forget(batch[:done])
                raise StorageUnavailable(
                    f"purge of deletion {deletion_id} stopped after {deleted + done} blobs: "
                    f"{exc}; it stays purging and resumes at the next purge"
                ) from exc
            deleted += done
            self._forget(batch)
        with self.database.reader() as conn, conn.transaction():
            if state_restored:
                conn.execute("UPDATE deletions SET state = 'restored' WHERE pk = ?", (deletion_id,))
            rows.finish_purge(conn, deletion_id)
        log.warning("purged deletion %d: %d blobs deleted", deletion_id, deleted)
        return deleted

    def _forget(self, batch: list[tuple[int, str]]) -> None:
        """Drop the trash rows of these (row key, blob key) pairs, their blobs deleted."""
        with self.database.reader() as conn, conn.transaction():
            rows.forget_rows(conn, [pk for pk, _ in batch])

    @staticmethod
    def _refuse_if_held(conn: Any, deletion_id: int) -> None:
        holds = rows.holds_on(conn, deletion_id)
        if holds:
            raise OnLegalHold(
                f"deletion {deletion_id}: {holds[0].level.lower()} {holds[0].uid} is under "
                f"legal hold ({holds[0].reason!r}); its trash is kept"
            )


def _with_header(summary: InstanceSummary, header: bytes) -> InstanceSummary:
    """The summary carrying the exact header bytes the index kept."""
    return replace(summary, header=header)
