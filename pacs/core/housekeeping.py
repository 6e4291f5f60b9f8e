"""The background housekeeping thread of ``pacs serve``: purges the trash of deletions
whose grace period is over (hourly) and runs the retention policies (daily by default).

Both are safe to repeat and to interrupt (a purge resumes; a retention pass deletes studies
one at a time), so a restart simply runs them again later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence

from pacs.core.archive import Archive
from pacs.core.retention import run_retention
from pacs.core.retention_policy import RetentionPolicy

log = logging.getLogger(__name__)


class Housekeeping:
    """A daemon thread: purge expired trash every ``purge_interval`` seconds, run the
    retention policies every ``retention_interval`` seconds (0: never)."""

    def __init__(
        self,
        archive: Archive,
        policies: Sequence[RetentionPolicy],
        *,
        retention_interval: float = 86400.0,
        purge_interval: float = 3600.0,
        first_delay: float = 60.0,
        nice: int = 10,
    ) -> None:
        self.archive = archive
        self.policies = tuple(policies)
        self.retention_interval = retention_interval
        self.purge_interval = purge_interval
        self.first_delay = first_delay
        self.nice = nice
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, *, retention: bool) -> None:
        """One round: purge what expired, then (if asked) the retention pass."""
        result = self.archive.trash.purge()
        if result.purged or result.held or result.unavailable:
            log.info(
                "housekeeping: purged %d deletion(s), %d blobs; %d held; %d waiting for a tier",
                len(result.purged),
                result.blobs_deleted,
                len(result.held),
                len(result.unavailable),
            )
        if retention and self.policies:
            run_retention(self.archive, self.policies)

    def _loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        next_retention = time.monotonic() + self.first_delay
        if self._stop.wait(self.first_delay):
            return
        while not self._stop.is_set():
            due = self.retention_interval > 0 and time.monotonic() >= next_retention
            try:
                self.run_once(retention=due)
            except Exception:
                log.exception("housekeeping failed; retrying later")
            if due:
                next_retention = time.monotonic() + self.retention_interval
            self._stop.wait(self.purge_interval)

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current step."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
