"""The write path: header parse -> blob put -> index add, compensating on failure."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pacs.core.ai_jobs import AiQueuePolicy
from pacs.core.charsets import LATIN1, CharsetSource
from pacs.core.dicom_header import summarize
from pacs.core.errors import DatasetMismatch, DuplicateInstance, OutOfResources, StorageUnavailable
from pacs.core.group_commit import GroupCommitter
from pacs.core.index.sql_index import AddResult, PendingAdd, SqlIndex
from pacs.core.model import InstanceSummary, StoreOutcome
from storage import BlobStore, BlobStoreError, BlobStoreFull, new_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreResult:
    """The answer to a store: what happened, and which instance it was."""

    outcome: StoreOutcome
    summary: InstanceSummary


class Ingest:
    """Stores Part 10 bytes exactly as received; acknowledges only what is durable."""

    def __init__(
        self,
        index: SqlIndex,
        blobs: BlobStore,
        committer: GroupCommitter[PendingAdd, AddResult],
        *,
        duplicate_policy: str = "ignore",
        max_pixels: int = 0,
        ai_policy: AiQueuePolicy | None = None,
        text_charset: CharsetSource = lambda: LATIN1,
    ) -> None:
        self.index = index
        self.ai_policy = ai_policy
        self.text_charset = text_charset  # for data sets that declare no character set
        self.blobs = blobs
        self.committer = committer
        self.duplicate_policy = duplicate_policy
        self.max_pixels = max_pixels
        # When a store last began or ended (epoch seconds): background work (tier moves)
        # reads it to step aside while modalities store. A plain float: no lock needed.
        self.last_store_time = 0.0

    def store(
        self, raw: bytes, origin: str, *, expected_sop_class: str = "", expected_sop_uid: str = ""
    ) -> StoreResult:
        """Parse, write the blob, index it; raises a PacsError subclass on refusal.

        ``expected_*`` are the UIDs a request announced (C-STORE's Affected SOP Class and
        Instance UIDs): a data set that says otherwise is refused rather than misfiled.
        """
        self.last_store_time = time.time()
        try:
            return self._store(raw, origin, expected_sop_class, expected_sop_uid)
        finally:
            self.last_store_time = time.time()

    def _store(
        self, raw: bytes, origin: str, expected_sop_class: str, expected_sop_uid: str
    ) -> StoreResult:
        summary, part10 = summarize(raw, max_pixels=self.max_pixels, charset=self.text_charset())
        if expected_sop_uid and summary.sop_uid != expected_sop_uid:
            raise DatasetMismatch(
                f"data set SOP Instance UID {summary.sop_uid} differs from the request's "
                f"{expected_sop_uid}"
            )
        if expected_sop_class and summary.sop_class_uid != expected_sop_class:
            raise DatasetMismatch(
                f"data set SOP Class UID {summary.sop_class_uid} differs from the request's "
                f"{expected_sop_class}"
            )
        if self.duplicate_policy != "replace" and self.index.has_instance(summary.sop_uid):
            if self.duplicate_policy == "reject":
                raise DuplicateInstance(f"SOP Instance {summary.sop_uid} is already stored")
            return StoreResult(StoreOutcome.DUPLICATE_IGNORED, summary)
        key = new_key()
        try:
            info = self.blobs.put(key, [part10])
        except BlobStoreFull as exc:
            raise OutOfResources(str(exc)) from exc
        except BlobStoreError as exc:
            raise StorageUnavailable(str(exc)) from exc
        ai_delay = self.ai_policy.delay_for(summary, origin) if self.ai_policy is not None else None
        try:
            result = self.committer.submit(
                PendingAdd(
                    summary, key, info.size, info.sha256, origin, self.duplicate_policy, ai_delay
                )
            )
        except BaseException:
            self.blobs.delete(key)
            raise
        if result.outcome == StoreOutcome.DUPLICATE_IGNORED:
            self.blobs.delete(key)
        if result.obsolete_blob:
            self.blobs.delete(result.obsolete_blob)
        return StoreResult(result.outcome, summary)
