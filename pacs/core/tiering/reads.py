"""Reads through the tiers for the Archive: the tier the index names first, then the others.

Every read notes its study's access in memory; the notes are written at most once a minute
per study, in one transaction (the policy needs days, not seconds). A read served by a
colder tier asks for the whole study to be recalled to the hot tier (once a minute at
most), which the tiering service of the main process carries out.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import BinaryIO

from pacs.core.model import StoredInstance
from pacs.core.tiering.ledger import HOT, TierLedger
from storage import TieredBlobStore

log = logging.getLogger(__name__)


class TierReads:
    """Opens instances wherever they are; records reads; requests recalls."""

    def __init__(
        self,
        blobs: TieredBlobStore,
        ledger: TierLedger,
        *,
        interval: float = 60.0,
        recall_on_read: bool = True,
    ) -> None:
        self.blobs = blobs
        self.ledger = ledger
        self.interval = interval
        self.recall_on_read = recall_on_read
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self._written: dict[str, float] = {}
        self._recalled: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flush_loop, name="tier-access", daemon=True)
        self._thread.start()

    def open(self, stored: StoredInstance) -> BinaryIO:
        """The blob, from the tier the index names or, failing that, any other."""
        handle, tier = self.blobs.open_located(stored.blob_key, stored.tier)
        self.accessed(stored.study_uid, tier)
        return handle

    def path(self, stored: StoredInstance) -> Path | None:
        """The blob's file when a local tier holds it (None: read it with :meth:`open`)."""
        path, tier = self.blobs.local_path_located(stored.blob_key, stored.tier)
        if path is not None:
            self.accessed(stored.study_uid, tier)
        return path

    def accessed(self, study_uid: str, tier: str) -> None:
        """Note a read of the study (served by ``tier``)."""
        now = time.time()
        with self._lock:
            if now - self._written.get(study_uid, 0.0) >= self.interval:
                self._pending[study_uid] = now
            recall = (
                self.recall_on_read
                and tier != HOT
                and now - self._recalled.get(study_uid, 0.0) >= self.interval
            )
            if recall:
                self._recalled[study_uid] = now
        if recall:
            try:
                self.ledger.request(study_uid, HOT, "recall", touch=True)
                log.info(
                    "study %s read from tier %s: recall to the hot tier requested", study_uid, tier
                )
            except Exception as exc:  # the read itself must not fail for this
                log.error("cannot request the recall of %s: %s", study_uid, exc)

    def flush(self) -> None:
        """Write the noted reads (one transaction)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._written.update(pending)
            horizon = time.time() - self.interval
            self._written = {k: v for k, v in self._written.items() if v >= horizon}
            self._recalled = {k: v for k, v in self._recalled.items() if v >= horizon}
        try:
            self.ledger.touch(pending)
        except Exception as exc:  # noted again by the next read
            log.error("cannot record study access times: %s", exc)

    def _flush_loop(self) -> None:
        while not self._stop.wait(min(self.interval, 30.0)):
            self.flush()

    def close(self) -> None:
        """Stop the flusher and write what is noted."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()
