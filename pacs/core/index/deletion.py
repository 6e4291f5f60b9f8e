"""Deleting a patient, study, series or instance from the index, in one transaction.

Children go with their parent (the foreign keys cascade); a parent left without children is
deleted too, up to the first ancestor that keeps some (Orthanc's "remaining ancestor"). The
change feed gets a ``Deleted`` row for each removed resource. The blobs are not touched here:
the caller deletes them once the transaction has committed, so that a failure never leaves
an index row pointing at a missing file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pacs.core.errors import NotFound
from pacs.core.index.db import Connection
from pacs.core.index.find_sql import ALIAS, TABLE
from pacs.core.model import Level

_PARENT_COLUMN: dict[Level, str] = {
    Level.STUDY: "patient_pk",
    Level.SERIES: "study_pk",
    Level.IMAGE: "series_pk",
}
_UID_COLUMN: dict[Level, str] = {
    Level.PATIENT: "patient_id",
    Level.STUDY: "study_uid",
    Level.SERIES: "series_uid",
    Level.IMAGE: "sop_uid",
}
_BLOBS_UNDER: dict[Level, str] = {
    Level.PATIENT: (
        "SELECT i.blob_key FROM instances i JOIN series se ON se.pk = i.series_pk "
        "JOIN studies st ON st.pk = se.study_pk WHERE st.patient_pk = ?"
    ),
    Level.STUDY: (
        "SELECT i.blob_key FROM instances i JOIN series se ON se.pk = i.series_pk "
        "WHERE se.study_pk = ?"
    ),
    Level.SERIES: "SELECT i.blob_key FROM instances i WHERE i.series_pk = ?",
    Level.IMAGE: "SELECT i.blob_key FROM instances i WHERE i.pk = ?",
}
_SERIES_UNDER: dict[Level, str] = {
    Level.PATIENT: (
        "SELECT se.series_uid FROM series se JOIN studies st ON st.pk = se.study_pk "
        "WHERE st.patient_pk = ?"
    ),
    Level.STUDY: "SELECT se.series_uid FROM series se WHERE se.study_pk = ?",
    Level.SERIES: "SELECT se.series_uid FROM series se WHERE se.pk = ?",
}


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed: the blobs to delete now, and the ancestor that remains."""

    blob_keys: list[str]
    remaining: tuple[Level, str] | None  # (level, public id) of the closest remaining ancestor


def delete_resource(conn: Connection, level: Level, public_id: str) -> Deletion:
    """Delete one resource and its descendants, and the ancestors it leaves empty."""
    now = time.time()
    with conn.transaction():
        rows = conn.execute(
            f"SELECT pk, {_UID_COLUMN[level]}"
            + (f", {_PARENT_COLUMN[level]}" if level in _PARENT_COLUMN else "")
            + f" FROM {TABLE[level]} {ALIAS[level]} WHERE public_id = ? ORDER BY pk LIMIT 1",
            (public_id,),
        )
        if not rows:
            raise NotFound(f"no {level.name.lower()} {public_id}")
        pk, uid = int(rows[0][0]), str(rows[0][1])
        parent_pk = int(rows[0][2]) if level in _PARENT_COLUMN else None
        blob_keys = [str(row[0]) for row in conn.execute(_BLOBS_UNDER[level], (pk,))]
        gone_series = (
            [str(row[0]) for row in conn.execute(_SERIES_UNDER[level], (pk,))]
            if level in _SERIES_UNDER
            else []
        )
        conn.execute(f"DELETE FROM {TABLE[level]} WHERE pk = ?", (pk,))
        changes = [("Deleted", level.name, uid)]
        remaining: tuple[Level, str] | None = None
        current = level
        while parent_pk is not None:
            parent = Level(current - 1)
            child_column = _PARENT_COLUMN[current]
            if conn.execute(
                f"SELECT 1 FROM {TABLE[current]} WHERE {child_column} = ? LIMIT 1", (parent_pk,)
            ):
                public = conn.execute(
                    f"SELECT public_id FROM {TABLE[parent]} WHERE pk = ?", (parent_pk,)
                )
                remaining = (parent, str(public[0][0]))
                break
            grand = conn.execute(
                f"SELECT {_UID_COLUMN[parent]}"
                + (f", {_PARENT_COLUMN[parent]}" if parent in _PARENT_COLUMN else "")
                + f" FROM {TABLE[parent]} WHERE pk = ?",
                (parent_pk,),
            )
            conn.execute(f"DELETE FROM {TABLE[parent]} WHERE pk = ?", (parent_pk,))
            changes.append(("Deleted", parent.name, str(grand[0][0])))
            if parent == Level.SERIES:
                gone_series.append(str(grand[0][0]))
            parent_pk = int(grand[0][1]) if parent in _PARENT_COLUMN else None
            current = parent
        conn.execute_many(
            "INSERT INTO changes (change_type, level, resource_uid, created_at) VALUES (?, ?, ?, ?)",
            [(kind, name, value, now) for kind, name, value in changes],
        )
        _forget_ai(conn, gone_series)
    return Deletion(blob_keys, remaining)


def _forget_ai(conn: Connection, series_uids: list[str]) -> None:
    """AI jobs and results (with their feedback) of the series that are gone."""
    for table in ("ai_results", "ai_jobs"):
        conn.execute_many(
            f"DELETE FROM {table} WHERE series_uid = ?", [(uid,) for uid in series_uids]
        )
