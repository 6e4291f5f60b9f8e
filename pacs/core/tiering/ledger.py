"""What the index knows about tiers: where each instance is, when each study was last read,
the moves requested (``tier_moves``, migration 6) and the copies of a move under way."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pacs.core.index.db import Database

HOT = "hot"

# Moves a reader is waiting for come before the policy's.
_PRIORITY = {"recall": 0, "prefetch": 1, "manual": 2}


@dataclass(frozen=True)
class MoveItem:
    """One instance to move: its row and where its blob is now."""

    pk: int
    sop_uid: str
    blob_key: str
    tier: str
    size: int
    sha256: str
    transfer_syntax: str


@dataclass(frozen=True)
class InFlight:
    """A copy under way: ``new_key`` in ``new_tier`` is to replace ``old_key`` in ``old_tier``
    for the instance row ``pk``. Whichever key no row refers to after a crash is deleted."""

    pk: int
    old_key: str
    old_tier: str
    new_key: str
    new_tier: str


@dataclass(frozen=True)
class Switch:
    """The index change that makes a verified copy the instance's blob."""

    pk: int
    old_key: str
    new_key: str
    tier: str
    size: int
    sha256: str
    transfer_syntax: str
    header: bytes | None = None  # a new header when a transform rewrote the file


@dataclass(frozen=True)
class TierUsage:
    """What one tier holds, from the index."""

    objects: int
    bytes: int
    original_bytes: int  # the same files as received (more when the tier compresses)


@dataclass(frozen=True)
class PendingMove:
    """A requested move of a whole study."""

    study_uid: str
    target: str
    reason: str
    attempts: int


@dataclass(frozen=True)
class StudyPlacement:
    """Where a study's bytes are, and when it was last read (or received)."""

    study_uid: str
    last_access: float
    bytes_by_tier: dict[str, int]


class TierLedger:
    """SQL for tiering, on the index's own connections."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # --- requests ---------------------------------------------------------------------------

    def request(self, study_uid: str, target: str, reason: str, *, touch: bool = False) -> None:
        """Ask for a study to be moved to ``target`` (a newer request replaces an older one).
        ``touch`` records a read of the study at the same time."""
        now = time.time()
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO tier_moves (study_uid, target, reason, requested_at, attempts, "
                "next_attempt_at, last_error, claimed_by, in_flight) "
                "VALUES (?, ?, ?, ?, 0, 0, '', '', '[]') "
                "ON CONFLICT (study_uid) DO UPDATE SET target = excluded.target, "
                "reason = excluded.reason, requested_at = excluded.requested_at, attempts = 0, "
                "next_attempt_at = 0, last_error = ''",
                (study_uid, target, reason, now),
            )
            if touch:
                conn.execute(
                    "UPDATE studies SET last_access = ? WHERE study_uid = ?", (now, study_uid)
                )

    def pending(self, limit: int = 10, now: float | None = None) -> list[PendingMove]:
        """Moves due now, those a reader waits for first."""
        now = time.time() if now is None else now
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT study_uid, target, reason, attempts, requested_at FROM tier_moves "
                "WHERE next_attempt_at <= ?",
                (now,),
            )
        rows.sort(key=lambda r: (_PRIORITY.get(str(r[2]), 3), float(r[4])))
        return [PendingMove(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows[:limit]]

    def requested_studies(self) -> set[str]:
        """Every study with a move requested (the policy leaves them alone)."""
        with self.database.reader() as conn:
            return {str(r[0]) for r in conn.execute("SELECT study_uid FROM tier_moves")}

    def claim(self, study_uid: str, mover: str, until: float) -> None:
        """Take a move for one mover: nobody else picks it before ``until`` (a lease; a
        mover that dies leaves it to be resumed then, or when it restarts)."""
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "UPDATE tier_moves SET next_attempt_at = ?, claimed_by = ? WHERE study_uid = ?",
                (until, mover, study_uid),
            )

    def release_claims(self, mover: str) -> None:
        """A restarted mover takes up again the moves it had claimed before it stopped."""
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "UPDATE tier_moves SET next_attempt_at = 0, claimed_by = '' WHERE claimed_by = ?",
                (mover,),
            )

    def finish(self, study_uid: str, target: str) -> None:
        """The study is on ``target``: forget the request (unless it was redirected)."""
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM tier_moves WHERE study_uid = ? AND target = ?", (study_uid, target)
            )

    def fail(self, study_uid: str, error: str, retry_at: float) -> None:
        """Record a failed attempt; the move is retried at ``retry_at``."""
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "UPDATE tier_moves SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ?, claimed_by = '' WHERE study_uid = ?",
                (retry_at, error[:500], study_uid),
            )

    def moves(self) -> list[dict[str, Any]]:
        """Every requested move, for status displays."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT study_uid, target, reason, requested_at, attempts, last_error "
                "FROM tier_moves ORDER BY requested_at"
            )
        return [
            {
                "study": r[0],
                "target": r[1],
                "reason": r[2],
                "requested_at": r[3],
                "attempts": r[4],
                "last_error": r[5],
            }
            for r in rows
        ]

    # --- copies under way -------------------------------------------------------------------

    def set_in_flight(self, study_uid: str, entries: Sequence[InFlight]) -> None:
        """Record the copies about to be made (before the first byte is written)."""
        payload = json.dumps([list(vars(e).values()) for e in entries])
        with self.database.reader() as conn, conn.transaction():
            conn.execute(
                "UPDATE tier_moves SET in_flight = ? WHERE study_uid = ?", (payload, study_uid)
            )

    def in_flight(self) -> dict[str, list[InFlight]]:
        """The copies under way (or left by a crash), by study."""
        with self.database.reader() as conn:
            rows = conn.execute("SELECT study_uid, in_flight FROM tier_moves")
        return {
            str(uid): [InFlight(*entry) for entry in json.loads(str(payload) or "[]")]
            for uid, payload in rows
            if payload and payload != "[]"
        }

    def in_flight_keys(self) -> set[str]:
        """Every blob key a move is working on (not an orphan, whatever the index says)."""
        return {
            key
            for entries in self.in_flight().values()
            for entry in entries
            for key in (entry.old_key, entry.new_key)
        }

    def referenced(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` that an instance row, or a trashed instance, refers to (a study
        deleted while it was moved keeps its old blob for a restore)."""
        found: set[str] = set()
        with self.database.reader() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                for table in ("instances", "deleted_instances"):
                    found.update(
                        str(r[0])
                        for r in conn.execute(
                            f"SELECT blob_key FROM {table} WHERE blob_key IN ({marks})", chunk
                        )
                    )
        return found

    # --- the switch -------------------------------------------------------------------------

    def instances_to_move(self, study_uid: str, target: str) -> list[MoveItem]:
        """The study's instances not yet on ``target``, in row order."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT i.pk, i.sop_uid, i.blob_key, i.tier, i.size, i.sha256, i.transfer_syntax "
                "FROM instances i JOIN series se ON se.pk = i.series_pk "
                "JOIN studies st ON st.pk = se.study_pk "
                "WHERE st.study_uid = ? AND i.tier <> ? ORDER BY i.pk",
                (study_uid, target),
            )
        return [
            MoveItem(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]), str(r[6]))
            for r in rows
        ]

    def switch(self, study_uid: str, switches: Sequence[Switch]) -> set[int]:
        """Point each row at its verified copy, in one transaction, only where the row still
        refers to the old blob (compare-and-swap: a row deleted or replaced meanwhile is left
        alone). Returns the row keys switched."""
        switched: set[int] = set()
        with self.database.reader() as conn, conn.transaction():
            for s in switches:
                # a rewritten blob (a new header) keeps the size as received: the first one
                rows = conn.execute(
                    "UPDATE instances SET blob_key = ?, tier = ?, size = ?, sha256 = ?, "
                    "transfer_syntax = ?, header = COALESCE(?, header), "
                    "original_size = CASE WHEN ? THEN COALESCE(original_size, size) "
                    "ELSE original_size END "
                    "WHERE pk = ? AND blob_key = ? RETURNING pk",
                    (
                        s.new_key,
                        s.tier,
                        s.size,
                        s.sha256,
                        s.transfer_syntax,
                        s.header,
                        s.header is not None,
                        s.pk,
                        s.old_key,
                    ),
                )
                if rows:
                    switched.add(s.pk)
        return switched

    def clear_in_flight(self, study_uid: str) -> None:
        """The batch is settled: its leftovers are deleted."""
        with self.database.reader() as conn, conn.transaction():
            conn.execute("UPDATE tier_moves SET in_flight = '[]' WHERE study_uid = ?", (study_uid,))

    # --- access times and placement ---------------------------------------------------------

    def touch(self, accessed: Mapping[str, float]) -> None:
        """Record when studies were read (one transaction for many)."""
        if not accessed:
            return
        with self.database.reader() as conn, conn.transaction():
            conn.execute_many(
                "UPDATE studies SET last_access = ? WHERE study_uid = ? "
                "AND (last_access IS NULL OR last_access < ?)",
                [(when, uid, when) for uid, when in accessed.items()],
            )

    def placements(self) -> list[StudyPlacement]:
        """Every study with its bytes per tier and its last access, least recent first."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT st.study_uid, st.last_access, st.updated_at, i.tier, SUM(i.size) "
                "FROM studies st "
                "JOIN series se ON se.study_pk = st.pk JOIN instances i ON i.series_pk = se.pk "
                "GROUP BY st.study_uid, st.last_access, st.updated_at, i.tier"
            )
        by_study: dict[str, StudyPlacement] = {}
        for uid, last_access, updated, tier, size in rows:
            seen = max(float(last_access or 0.0), float(updated))
            placement = by_study.setdefault(str(uid), StudyPlacement(str(uid), seen, {}))
            placement.bytes_by_tier[str(tier)] = int(size)
        return sorted(by_study.values(), key=lambda p: p.last_access)

    def priors(self, study_uid: str, limit: int) -> list[str]:
        """The same patient's other studies, most recent first (by study date, then arrival)."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT other.study_uid FROM studies st "
                "JOIN studies other ON other.patient_pk = st.patient_pk AND other.pk <> st.pk "
                "WHERE st.study_uid = ? "
                "ORDER BY other.study_date DESC, other.study_time DESC, other.pk DESC LIMIT ?",
                (study_uid, limit),
            )
        return [str(r[0]) for r in rows]

    def new_studies_since(self, seq: int) -> tuple[list[str], int]:
        """Studies created after change ``seq`` (from the change feed) and the last seq."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT seq, change_type, resource_uid FROM changes WHERE seq > ? ORDER BY seq "
                "LIMIT 1000",
                (seq,),
            )
        studies = [str(uid) for _, kind, uid in rows if kind == "NewStudy"]
        return studies, (int(rows[-1][0]) if rows else seq)

    def last_change_seq(self) -> int:
        """The change feed's latest sequence number (0 when empty)."""
        with self.database.reader() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])

    def tier_usage(self) -> dict[str, tuple[int, int]]:
        """(objects, bytes) per tier."""
        return {tier: (u.objects, u.bytes) for tier, u in self.tier_usage_detail().items()}

    def tier_usage_detail(self) -> dict[str, TierUsage]:
        """Objects, stored bytes and bytes as received, per tier."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT tier, COUNT(*), COALESCE(SUM(size), 0), "
                "COALESCE(SUM(COALESCE(original_size, size)), 0) FROM instances GROUP BY tier"
            )
        return {str(r[0]): TierUsage(int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def received_since(self, since: float) -> tuple[int, int]:
        """(objects, bytes) received since ``since`` (epoch seconds), whatever their tier."""
        with self.database.reader() as conn:
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM instances WHERE received_at >= ?",
                (since,),
            )[0]
        return int(count), int(size)
