"""The records of long REST operations (jobs), kept across restarts (migrations 9, 10).

A job's record is written when it starts and when it ends; the running state lives in the
door's memory. Each record names its owner, the server process that runs it
(:mod:`pacs.core.process_owner`), because several servers may share one PostgreSQL index:
at start-up a server takes over only the unfinished records of its host's processes that
are gone, and those of other hosts once they are older than :data:`STALE_AFTER`: a record
with a recipe (what the door needs to run the job again) is claimed to run again, the
others are failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pacs.core.index.db import Database
from pacs.core.process_owner import new_owner, owner_gone

FINISHED = ("Success", "Failure")
STALE_AFTER = 24 * 3600.0  # seconds after which another host's unfinished job is failed
_COLUMNS = (
    "id, type, state, progress, content, created_at, started_at, completed_at, "
    "error_code, error_description, error_details, recipe"
)


@dataclass(frozen=True)
class JobRecord:
    """What is kept of a job: its identity, state, content, times and error."""

    id: str
    type: str
    state: str
    progress: int
    content: dict[str, Any]
    created_at: float
    started_at: float
    completed_at: float
    error_code: int
    error_description: str
    error_details: str
    recipe: dict[str, Any] | None = None  # how to run it again; None: it cannot be


class JobRecords:
    """Save, list, fail and delete job records; the records saved here belong to ``owner``
    (a fresh owner for this process when None)."""

    def __init__(self, database: Database, owner: str | None = None) -> None:
        self.database = database
        self.owner = new_owner() if owner is None else owner

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.database.reader() as conn:
            return conn.execute(sql, params)

    def save(self, record: JobRecord) -> None:
        """Insert or update one record."""
        self._run(
            f"INSERT INTO jobs ({_COLUMNS}, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET type = excluded.type, state = excluded.state, "
            "progress = excluded.progress, content = excluded.content, "
            "started_at = excluded.started_at, completed_at = excluded.completed_at, "
            "error_code = excluded.error_code, "
            "error_description = excluded.error_description, "
            "error_details = excluded.error_details, recipe = excluded.recipe",
            (
                record.id,
                record.type,
                record.state,
                record.progress,
                json.dumps(record.content, ensure_ascii=False),
                record.created_at,
                record.started_at,
                record.completed_at,
                record.error_code,
                record.error_description,
                record.error_details,
                "" if record.recipe is None else json.dumps(record.recipe, ensure_ascii=False),
                self.owner,
            ),
        )

    def take_over_interrupted(
        self, error: tuple[int, str], details: str, now: float
    ) -> tuple[list[JobRecord], int]:
        """At start-up, the unfinished records whose server is gone (this host's processes
        that no longer run, other hosts' records older than :data:`STALE_AFTER`): those with
        a recipe become this process's, ``Pending``, and are returned to run again (a record
        another server claimed first is left to it); the others are marked failed with
        ``error``. Returns (the records claimed, how many were failed)."""
        placeholders = ", ".join("?" for _ in FINISHED)
        unfinished = self._run(
            f"SELECT id, owner, created_at, started_at, recipe FROM jobs WHERE state NOT IN "
            f"({placeholders})",
            FINISHED,
        )
        failed, claimed = [], []
        for job_id, owner, created, started, recipe in unfinished:
            gone = owner_gone(str(owner), self.owner)
            if not (
                gone or (gone is None and now - max(float(created), float(started)) > STALE_AFTER)
            ):
                continue
            if not recipe:
                failed.append(str(job_id))
            elif self._run(
                "UPDATE jobs SET owner = ?, state = 'Pending', progress = 0 "
                "WHERE id = ? AND owner = ? RETURNING id",
                (self.owner, str(job_id), str(owner)),
            ):
                claimed.append(str(job_id))
        if failed:
            with self.database.reader() as conn, conn.transaction():
                conn.execute_many(
                    "UPDATE jobs SET state = 'Failure', error_code = ?, error_description = ?, "
                    f"error_details = ?, completed_at = ? WHERE id = ? AND state NOT IN "
                    f"({placeholders})",
                    [(error[0], error[1], details, now, job_id, *FINISHED) for job_id in failed],
                )
        return self.get(claimed), len(failed)

    def recent(self, limit: int) -> list[JobRecord]:
        """The ``limit`` most recently created records, oldest first."""
        rows = self._run(
            f"SELECT {_COLUMNS} FROM jobs ORDER BY created_at DESC, id LIMIT ?", (limit,)
        )
        return [_record(row) for row in reversed(rows)]

    def get(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """These records (those that exist), oldest first."""
        if not job_ids:
            return []
        marks = ", ".join("?" for _ in job_ids)
        rows = self._run(
            f"SELECT {_COLUMNS} FROM jobs WHERE id IN ({marks}) ORDER BY created_at, id",
            list(job_ids),
        )
        return [_record(row) for row in rows]

    def delete(self, job_ids: Sequence[str]) -> None:
        """Forget these records."""
        for job_id in job_ids:
            self._run("DELETE FROM jobs WHERE id = ?", (job_id,))

    def keep_recent(self, limit: int) -> None:
        """Delete the finished records older than the ``limit`` most recent ones."""
        self._run(
            "DELETE FROM jobs WHERE state IN ('Success', 'Failure') AND id NOT IN "
            "(SELECT id FROM jobs ORDER BY created_at DESC LIMIT ?)",
            (limit,),
        )


def _record(row: Sequence[Any]) -> JobRecord:
    """A record from a row of :data:`_COLUMNS`."""
    return JobRecord(
        id=str(row[0]),
        type=str(row[1]),
        state=str(row[2]),
        progress=int(row[3]),
        content=json.loads(row[4]),
        created_at=float(row[5]),
        started_at=float(row[6]),
        completed_at=float(row[7]),
        error_code=int(row[8]),
        error_description=str(row[9]),
        error_details=str(row[10]),
        recipe=json.loads(row[11]) if row[11] else None,
    )
