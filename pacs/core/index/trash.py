"""The rows of deletions and of the trash: listing, and the state changes of a restore or a
purge, each a short transaction so that either can stop anywhere and resume.

A deletion's ``state``: ``trash`` (restorable) -> ``restoring`` -> ``restored``, or
``trash`` -> ``purging`` -> ``purged``; a hard delete is ``purged`` at once. Instances a
restore skipped (a newer copy was stored meanwhile) stay in the trash with a ``note`` until
the grace period ends; the ``deletions`` row is never removed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pacs.core.errors import Conflict, NotFound
from pacs.core.index.db import Connection
from pacs.core.index.holds import Hold, active_holds

_DELETION_COLUMNS = (
    "pk",
    "created_at",
    "who",
    "door",
    "reason",
    "level",
    "resource_uid",
    "public_id",
    "patient_id",
    "patient_name",
    "study_uids",
    "instances",
    "bytes",
    "labels",
    "state",
    "purge_after",
    "purged_at",
    "restored_at",
    "restored_by",
    "restore_skipped",
)


@dataclass(frozen=True)
class TrashedInstance:
    """One instance in the trash: what a restore needs to index it again."""

    pk: int
    sop_uid: str
    study_uid: str
    blob_key: str
    size: int
    sha256: str
    header: bytes
    origin: str
    received_at: float
    tier: str = "hot"  # where the blob is
    original_size: int | None = None  # the size as received, when a tier compressed it


def _deletion(row: Any) -> dict[str, Any]:
    record = dict(zip(_DELETION_COLUMNS, row, strict=True))
    record["id"] = record.pop("pk")
    record["study_uids"] = json.loads(record["study_uids"])
    record["labels"] = json.loads(record["labels"])
    return record


def list_deletions(
    conn: Connection, state: str = "", limit: int = 100, before: int = 0
) -> list[dict[str, Any]]:
    """Deletions, newest first (``before``: ids below it, to page)."""
    where, params = ["1 = 1"], []
    if state:
        where.append("state = ?")
        params.append(state)
    if before:
        where.append("pk < ?")
        params.append(str(before))
    rows = conn.execute(
        f"SELECT {', '.join(_DELETION_COLUMNS)} FROM deletions WHERE {' AND '.join(where)} "
        "ORDER BY pk DESC LIMIT ?",
        [*params, limit],
    )
    return [_deletion(row) for row in rows]


def get_deletion(conn: Connection, deletion_id: int) -> dict[str, Any]:
    """One deletion with how many of its instances are still in the trash."""
    rows = conn.execute(
        f"SELECT {', '.join(_DELETION_COLUMNS)} FROM deletions WHERE pk = ?", (deletion_id,)
    )
    if not rows:
        raise NotFound(f"no deletion {deletion_id}")
    record = _deletion(rows[0])
    in_trash, skipped = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN note = '' THEN 0 ELSE 1 END), 0) "
        "FROM deleted_instances WHERE deletion_pk = ?",
        (deletion_id,),
    )[0]
    record["in_trash"] = int(in_trash)
    record["skipped_in_trash"] = int(skipped)
    return record


def holds_on(conn: Connection, deletion_id: int) -> list[Hold]:
    """Active holds on the studies (or patients) still in this deletion's trash."""
    rows = conn.execute(
        "SELECT DISTINCT study_uid, patient_id FROM deleted_instances WHERE deletion_pk = ?",
        (deletion_id,),
    )
    return active_holds(conn, [str(r[0]) for r in rows], sorted({str(r[1]) for r in rows}))


def move_state(conn: Connection, deletion_id: int, allowed: tuple[str, ...], new: str) -> str:
    """Change the deletion's state if it is one of ``allowed``; returns the old state
    (Conflict when it is another, NotFound when there is no such deletion)."""
    rows = conn.execute("SELECT state FROM deletions WHERE pk = ?", (deletion_id,))
    if not rows:
        raise NotFound(f"no deletion {deletion_id}")
    old = str(rows[0][0])
    if old not in allowed:
        raise Conflict(f"deletion {deletion_id} is {old}; it cannot go to {new}")
    if old != new:
        conn.execute("UPDATE deletions SET state = ? WHERE pk = ?", (new, deletion_id))
    return old


def pending_instances(
    conn: Connection, deletion_id: int, after_pk: int, limit: int
) -> list[TrashedInstance]:
    """Instances of the deletion still in the trash and not skipped, in order."""
    rows = conn.execute(
        "SELECT pk, sop_uid, study_uid, blob_key, size, sha256, header, origin, received_at, "
        "tier, original_size FROM deleted_instances WHERE deletion_pk = ? AND pk > ? AND note = '' "
        "ORDER BY pk LIMIT ?",
        (deletion_id, after_pk, limit),
    )
    return [
        TrashedInstance(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            int(r[4]),
            str(r[5]),
            bytes(r[6]),
            str(r[7]),
            float(r[8]),
            str(r[9]),
            None if r[10] is None else int(r[10]),
        )
        for r in rows
    ]


def finish_restore(conn: Connection, deletion_id: int, who: str) -> int:
    """Mark the deletion restored; returns how many instances were skipped."""
    skipped = int(
        conn.execute(
            "SELECT COUNT(*) FROM deleted_instances WHERE deletion_pk = ? AND note <> ''",
            (deletion_id,),
        )[0][0]
    )
    conn.execute(
        "UPDATE deletions SET state = 'restored', restored_at = ?, restored_by = ?, "
        "restore_skipped = ? WHERE pk = ?",
        (time.time(), who, skipped, deletion_id),
    )
    return skipped


def purgeable(conn: Connection, now: float) -> list[int]:
    """Deletions whose grace period is over and that still have instances in the trash,
    and those a purge began (interrupted: resumed whatever their grace period)."""
    rows = conn.execute(
        "SELECT pk FROM deletions WHERE state = 'purging' OR (purge_after <= ? AND "
        "(state = 'trash' OR (state = 'restored' AND purged_at IS NULL))) ORDER BY pk",
        (now,),
    )
    return [int(r[0]) for r in rows]


def trash_blobs(conn: Connection, deletion_id: int, limit: int) -> list[tuple[int, str]]:
    """The next (row key, blob key) pairs of the deletion to purge."""
    rows = conn.execute(
        "SELECT pk, blob_key FROM deleted_instances WHERE deletion_pk = ? ORDER BY pk LIMIT ?",
        (deletion_id, limit),
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def forget_rows(conn: Connection, pks: list[int]) -> None:
    """Drop trash rows whose blobs are deleted."""
    conn.execute_many("DELETE FROM deleted_instances WHERE pk = ?", [(pk,) for pk in pks])


def finish_purge(conn: Connection, deletion_id: int) -> None:
    """The trash of this deletion is empty: purged (a restored one keeps its state)."""
    now = time.time()
    conn.execute(
        "UPDATE deletions SET state = CASE WHEN state = 'restored' THEN state ELSE 'purged' END, "
        "purged_at = ? WHERE pk = ?",
        (now, deletion_id),
    )
