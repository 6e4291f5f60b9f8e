"""The AI job queue: one row per series, written in the instance's own transaction.

Workers pull: ``claim`` takes due jobs under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), ``finish``/``retry`` close them. A worker that
dies leaves its lease to expire, and the job is claimed again; results are written under
deterministic UIDs, so a job run twice stores its results once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pacs.core.index.db import Database
from pacs.core.model import InstanceSummary

log = logging.getLogger(__name__)

AI_ORIGIN_PREFIX = "ai:"
"""Origin of the objects the AI stores itself (never queued again)."""


@dataclass(frozen=True)
class AiQueuePolicy:
    """Which received instances queue their series, and how long a series must stay quiet."""

    delay: float
    modalities: frozenset[str] = frozenset()  # empty: every modality

    def delay_for(self, summary: InstanceSummary, origin: str) -> float | None:
        """Seconds until the series is due, or None when this instance queues nothing."""
        if origin.lower().startswith(AI_ORIGIN_PREFIX):
            return None
        if self.modalities and summary.modality.upper() not in self.modalities:
            return None
        return self.delay


@dataclass(frozen=True)
class AiJob:
    """A claimed job: the series to read, and which state of it (its generation)."""

    pk: int
    series_uid: str
    study_uid: str
    generation: int
    attempts: int
    worker: str


class AiQueue:
    """Claims, completes and retries AI jobs; reports the queue's state."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def claim(self, worker: str, limit: int, lease_seconds: float) -> list[AiJob]:
        """Take up to ``limit`` due jobs (pending and due, or running with an expired lease)."""
        now = time.time()
        due = "(state = 'pending' AND due_at <= ?) OR (state = 'running' AND lease_until < ?)"
        with self.database.reader() as conn:
            # Idle polling stays read-only: the write lock is taken only when work is due.
            if not conn.execute(f"SELECT 1 FROM ai_jobs WHERE {due} LIMIT 1", (now, now)):
                return []
        skip_locked = " FOR UPDATE SKIP LOCKED" if self.database.dialect == "postgresql" else ""
        with self.database.reader() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE ai_jobs SET state = 'running', lease_until = ?, worker = ?, "
                "attempts = attempts + 1, updated_at = ? WHERE pk IN ("
                f"SELECT pk FROM ai_jobs WHERE {due} ORDER BY due_at LIMIT ?"
                f"{skip_locked}) RETURNING pk, series_uid, study_uid, generation, attempts",
                (now + lease_seconds, worker, now, now, now, limit),
            )
        return [AiJob(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), worker) for r in rows]

    def finish(self, job: AiJob, state: str = "done", note: str = "") -> bool:
        """Close a job (done or skipped); False when the series changed meanwhile (a newer
        generation is queued and will be processed instead) or when the lease expired and
        another worker holds the job now."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "UPDATE ai_jobs SET state = ?, last_error = ?, lease_until = 0, updated_at = ? "
                "WHERE pk = ? AND generation = ? AND worker = ? AND state = 'running' RETURNING pk",
                (state, note[:500], time.time(), job.pk, job.generation, job.worker),
            )
        return bool(rows)

    def retry(self, job: AiJob, error: str, max_attempts: int, backoff: float = 5.0) -> str:
        """After a failure: pending again with exponential back-off, or failed for good."""
        exhausted = job.attempts >= max_attempts
        state = "failed" if exhausted else "pending"
        delay = backoff * 2 ** (job.attempts - 1)
        with self.database.reader() as conn:
            conn.execute(
                "UPDATE ai_jobs SET state = ?, due_at = ?, last_error = ?, lease_until = 0, "
                "updated_at = ? WHERE pk = ? AND generation = ? AND worker = ? "
                "AND state = 'running'",
                (
                    state,
                    time.time() + delay,
                    error[:500],
                    time.time(),
                    job.pk,
                    job.generation,
                    job.worker,
                ),
            )
        return state

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self.database.reader() as conn:
            rows = conn.execute("SELECT state, COUNT(*) FROM ai_jobs GROUP BY state")
        return {str(state): int(count) for state, count in rows}

    def jobs(self, state: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Jobs for people: series, state, attempts and the last error."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT series_uid, study_uid, state, generation, attempts, due_at, last_error, "
                f"updated_at FROM ai_jobs {where} ORDER BY updated_at DESC LIMIT ?",
                (*params, limit),
            )
        keys = (
            "series_uid",
            "study_uid",
            "state",
            "generation",
            "attempts",
            "due_at",
            "last_error",
            "updated_at",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]
