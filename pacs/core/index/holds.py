"""Legal holds on studies and patients: who set or cleared each one, when and why.

A hold names a Study Instance UID (or a Patient ID), not a row: it outlives the study's
deletion, so it also keeps the study's instances in the trash from being purged. Cleared
holds stay as history; at most one hold per study (or patient) is active.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pacs.core.errors import InvalidQuery, NotFound, OnLegalHold
from pacs.core.index.db import Connection, Database

HoldLevel = Literal["STUDY", "PATIENT"]
_COLUMNS = "pk, level, uid, reason, set_by, set_at, cleared_by, cleared_at, clear_reason"
_CHUNK = 500


@dataclass(frozen=True)
class Hold:
    """One hold, active while ``cleared_at`` is None."""

    pk: int
    level: str
    uid: str
    reason: str
    set_by: str
    set_at: float
    cleared_by: str | None
    cleared_at: float | None
    clear_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_level(level: str) -> HoldLevel:
    if level not in ("STUDY", "PATIENT"):
        raise InvalidQuery(f"a hold is on a STUDY or a PATIENT, not {level!r}")
    return level  # type: ignore[return-value]


def active_holds(
    conn: Connection, study_uids: Sequence[str], patient_ids: Sequence[str]
) -> list[Hold]:
    """The active holds on any of these studies or patients (inside a caller's transaction)."""
    found: list[Hold] = []
    for level, uids in (("STUDY", list(study_uids)), ("PATIENT", list(patient_ids))):
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM legal_holds WHERE cleared_at IS NULL AND level = ? "
                f"AND uid IN ({marks}) ORDER BY pk",
                [level, *chunk],
            )
            found.extend(Hold(*row) for row in rows)
    return found


def refuse_if_held(
    conn: Connection, study_uids: Sequence[str], patient_ids: Sequence[str], what: str
) -> None:
    """Raise OnLegalHold when any of these studies or patients is held."""
    holds = active_holds(conn, study_uids, patient_ids)
    if holds:
        first = holds[0]
        raise OnLegalHold(
            f"{what}: {first.level.lower()} {first.uid} is under legal hold "
            f"(set by {first.set_by}: {first.reason!r}); clear the hold first"
        )


class LegalHolds:
    """Set, clear and list holds."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def place(self, level: str, uid: str, reason: str, who: str) -> Hold:
        """Put a study (or patient) on hold; it must be stored or in the trash."""
        level = _check_level(level)
        if not uid.strip() or not reason.strip():
            raise InvalidQuery("a hold needs a UID and a reason")
        with self.database.reader() as conn, conn.transaction():
            if not _known(conn, level, uid):
                raise NotFound(f"no {level.lower()} {uid} is stored or in the trash")
            current = active_holds(
                conn, [uid] if level == "STUDY" else [], [uid] if level == "PATIENT" else []
            )
            if current:
                return current[0]
            conn.execute(
                "INSERT INTO legal_holds (level, uid, reason, set_by, set_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (level, uid, reason, who, time.time()),
            )
            return active_holds(
                conn, [uid] if level == "STUDY" else [], [uid] if level == "PATIENT" else []
            )[0]

    def lift(self, level: str, uid: str, reason: str, who: str) -> Hold:
        """Lift the active hold (kept as history with who, when and why)."""
        level = _check_level(level)
        if not reason.strip():
            raise InvalidQuery("clearing a hold needs a reason")
        with self.database.reader() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE legal_holds SET cleared_by = ?, cleared_at = ?, clear_reason = ? "
                f"WHERE level = ? AND uid = ? AND cleared_at IS NULL RETURNING {_COLUMNS}",
                (who, time.time(), reason, level, uid),
            )
        if not rows:
            raise NotFound(f"no active hold on {level.lower()} {uid}")
        return Hold(*rows[0])

    def holds(self, *, include_cleared: bool = False, limit: int = 1000) -> list[Hold]:
        """Holds, newest first (active ones only unless ``include_cleared``)."""
        where = "" if include_cleared else "WHERE cleared_at IS NULL "
        with self.database.reader() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM legal_holds {where}ORDER BY pk DESC LIMIT ?", (limit,)
            )
        return [Hold(*row) for row in rows]

    def held_studies(self) -> set[str]:
        """Study UIDs held directly (patient holds are checked per patient)."""
        return {h.uid for h in self.holds(limit=10**9) if h.level == "STUDY"}

    def held_patients(self) -> set[str]:
        """Patient IDs held."""
        return {h.uid for h in self.holds(limit=10**9) if h.level == "PATIENT"}


def _known(conn: Connection, level: HoldLevel, uid: str) -> bool:
    column = "study_uid" if level == "STUDY" else "patient_id"
    live = "studies" if level == "STUDY" else "patients"
    return bool(
        conn.execute(f"SELECT 1 FROM {live} WHERE {column} = ? LIMIT 1", (uid,))
        or conn.execute(f"SELECT 1 FROM deleted_instances WHERE {column} = ? LIMIT 1", (uid,))
    )
