"""The background scrub: re-reads every stored object at a bounded rate, in index order,
resuming where it stopped (its position is kept in ``scrub_state``), and records what is
missing or corrupt in ``integrity_problems``.

It runs in its own thread, niced, reading at most ``rate`` bytes per second, so ingest keeps
the disk and the CPU; it only reads, except (optionally) to repair a copy from a replica.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from pacs.core.index.blob_rows import IndexedBlob, indexed_blobs, still_indexed
from pacs.core.index.db import Database
from pacs.core.integrity import Problem, check_blob
from storage import BlobStore, RateLimiter

log = logging.getLogger(__name__)

Repairer = Callable[[Problem], bool]
"""Restores a problem's object (from a replica); True when the object is sound again."""

_NAME = "default"
_PROBLEM_COLUMNS = (
    "sop_uid",
    "study_uid",
    "blob_key",
    "kind",
    "expected_size",
    "expected_sha256",
    "found_size",
    "found_sha256",
    "detail",
    "state",
    "detected_at",
    "updated_at",
)


class ScrubLedger:
    """The scrub's rows: its position and counters, and the problems it found."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def state(self) -> dict[str, Any]:
        """Position and counters (a fresh row the first time)."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT position, passes, next_pass_at, last_pass_completed_at, checked, "
                "bytes_read, updated_at FROM scrub_state WHERE name = ?",
                (_NAME,),
            )
            if not rows:
                now = time.time()
                conn.execute(
                    "INSERT INTO scrub_state (name, position, passes, next_pass_at, "
                    "last_pass_completed_at, checked, bytes_read, updated_at) "
                    "VALUES (?, 0, 0, ?, 0, 0, 0, ?) ON CONFLICT (name) DO NOTHING",
                    (_NAME, now, now),
                )
                return self.state()
        keys = (
            "position",
            "passes",
            "next_pass_at",
            "last_pass_completed_at",
            "checked",
            "bytes_read",
            "updated_at",
        )
        return dict(zip(keys, rows[0], strict=True))

    def advance(self, position: int, checked: int, bytes_read: int) -> None:
        """Remember how far the scrub got (one small write per batch)."""
        with self.database.reader() as conn:
            conn.execute(
                "UPDATE scrub_state SET position = ?, checked = checked + ?, "
                "bytes_read = bytes_read + ?, updated_at = ? WHERE name = ?",
                (position, checked, bytes_read, time.time(), _NAME),
            )

    def complete_pass(self, next_pass_at: float) -> None:
        """The end of the index was reached: back to the start, one more pass counted."""
        with self.database.reader() as conn:
            conn.execute(
                "UPDATE scrub_state SET position = 0, passes = passes + 1, "
                "last_pass_completed_at = ?, next_pass_at = ?, checked = 0, bytes_read = 0, "
                "updated_at = ? WHERE name = ?",
                (time.time(), next_pass_at, time.time(), _NAME),
            )

    def record(self, problem: Problem, state: str = "open") -> None:
        """Keep (or update) a problem: ``open`` until repaired or found sound again."""
        now = time.time()
        with self.database.reader() as conn:
            conn.execute(
                f"INSERT INTO integrity_problems ({', '.join(_PROBLEM_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sop_uid) DO UPDATE SET "
                "study_uid = excluded.study_uid, blob_key = excluded.blob_key, "
                "kind = excluded.kind, expected_size = excluded.expected_size, "
                "expected_sha256 = excluded.expected_sha256, found_size = excluded.found_size, "
                "found_sha256 = excluded.found_sha256, detail = excluded.detail, "
                "state = excluded.state, updated_at = excluded.updated_at",
                (
                    problem.sop_uid,
                    problem.study_uid,
                    problem.blob_key,
                    problem.kind,
                    problem.expected_size,
                    problem.expected_sha256,
                    problem.found_size,
                    problem.found_sha256,
                    problem.detail,
                    state,
                    now,
                    now,
                ),
            )

    def resolve(self, sop_uid: str, state: str = "resolved") -> None:
        """The object is sound again (repaired, or replaced by a new copy)."""
        with self.database.reader() as conn:
            conn.execute(
                "UPDATE integrity_problems SET state = ?, updated_at = ? WHERE sop_uid = ?",
                (state, time.time(), sop_uid),
            )

    def open_problems(self) -> set[str]:
        """SOP Instance UIDs whose problem is still open."""
        with self.database.reader() as conn:
            rows = conn.execute("SELECT sop_uid FROM integrity_problems WHERE state = 'open'")
        return {str(r[0]) for r in rows}

    def problems(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Problems, open first, newest first."""
        with self.database.reader() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(_PROBLEM_COLUMNS)} FROM integrity_problems "
                "ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END, updated_at DESC LIMIT ?",
                (limit,),
            )
        return [dict(zip(_PROBLEM_COLUMNS, row, strict=True)) for row in rows]

    def max_pk(self) -> int:
        """The highest instance row key (for progress)."""
        with self.database.reader() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(pk), 0) FROM instances")[0][0])


class Scrubber:
    """Walks the index in primary-key order, a batch at a time, verifying each object."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        *,
        rate_bytes: float,
        pass_interval: float = 86400.0,
        batch: int = 100,
        repair: Repairer | None = None,
        nice: int = 10,
    ) -> None:
        self.ledger = ScrubLedger(database)
        self.database = database
        self.blobs = blobs
        self.rate_bytes = rate_bytes
        self.limiter = RateLimiter(rate_bytes)
        self.pass_interval = pass_interval
        self.batch = batch
        self.repair = repair
        self.nice = nice
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open: set[str] | None = None

    def step(self) -> int:
        """Verify the next batch; at the end of the index complete the pass. Returns how
        many objects were checked (0 at the end of a pass)."""
        if self._open is None:
            self._open = self.ledger.open_problems()
        position = int(self.ledger.state()["position"])
        batch: list[IndexedBlob] = next(
            indexed_blobs(self.database, after_pk=position, batch=self.batch), []
        )
        if not batch:
            self.ledger.complete_pass(time.time() + self.pass_interval)
            log.info("scrub pass complete")
            return 0
        read_total = checked = 0
        for entry in batch:
            if self._stop.is_set():
                break
            problem, read = check_blob(self.blobs, entry, self.limiter)
            read_total += read
            checked += 1
            position = entry.pk
            if problem is None:
                if entry.sop_uid in self._open:
                    self.ledger.resolve(entry.sop_uid)
                    self._open.discard(entry.sop_uid)
                continue
            if not still_indexed(self.database, entry):
                continue
            self._handle(problem)
        self.ledger.advance(position, checked, read_total)
        return checked

    def _handle(self, problem: Problem) -> None:
        assert self._open is not None
        log.error("scrub: %s", problem.describe())
        if self.repair is not None and self.repair(problem):
            log.warning("scrub: repaired %s from the replica", problem.blob_key)
            self.ledger.record(problem, state="repaired")
            self._open.discard(problem.sop_uid)
            return
        self.ledger.record(problem)
        self._open.add(problem.sop_uid)

    def run_pass(self) -> None:
        """Verify to the end of the index (tests and ``pacs verify`` use it directly)."""
        while self.step():
            pass

    def _loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)  # this thread
        log.info("scrub running at %.1f MB/s", self.rate_bytes / 1e6)
        while not self._stop.is_set():
            try:
                state = self.ledger.state()
                wait = float(state["next_pass_at"]) - time.time()
                if int(state["position"]) == 0 and wait > 0:
                    self._stop.wait(min(wait, 60.0))
                    continue
                if not self.step():
                    self._stop.wait(1.0)  # end of a pass: never spin on an empty index
            except Exception:
                log.exception("scrub step failed; retrying in a minute")
                self._stop.wait(60.0)

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="scrub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the object being read."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def status(self) -> dict[str, Any]:
        """For ``GET /integrity``: rate, progress of this pass, counters, problems."""
        return scrub_status(self.ledger, self.rate_bytes, self.pass_interval)


def scrub_status(ledger: ScrubLedger, rate_bytes: float, pass_interval: float) -> dict[str, Any]:
    """The scrub's state and the problems it found, as JSON-ready values."""
    state = ledger.state()
    problems = ledger.problems()
    return {
        "scrub": {
            "enabled": rate_bytes > 0,
            "rate_mb_s": rate_bytes / 1e6,
            "pass_hours": pass_interval / 3600,
            "position": state["position"],
            "last_instance_pk": ledger.max_pk(),
            "passes_completed": state["passes"],
            "last_pass_completed_at": state["last_pass_completed_at"] or None,
            "checked_this_pass": state["checked"],
            "bytes_read_this_pass": state["bytes_read"],
            "next_pass_at": state["next_pass_at"],
            "updated_at": state["updated_at"],
        },
        "open_problems": sum(1 for p in problems if p["state"] == "open"),
        "problems": problems,
    }
