"""Deleting a patient, study, series or instance from the index, in one transaction.

Children go with their parent (the foreign keys cascade); a parent left without children is
deleted too, up to the first ancestor that keeps some (Orthanc's "remaining ancestor"). The
change feed gets a ``Deleted`` row for each removed resource. Every deletion is recorded in
``deletions`` (who, when, through which door, what, how much), refused when a study it
touches is under legal hold, and, unless it is a hard delete, its instances move to the trash
(``deleted_instances``: blob key, digest, header bytes, origin) with their blobs kept, so
that it can be restored. The blobs are not touched here: after a hard delete the caller
deletes them once the transaction has committed, so that a failure never leaves an index row
pointing at a missing file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from pacs.core.errors import NotFound
from pacs.core.index import deleted_ai
from pacs.core.index.db import Connection
from pacs.core.index.find_sql import ALIAS, TABLE
from pacs.core.index.holds import refuse_if_held
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
# Row keys of the ``target`` level below one row (``?``) of the ``level`` above it.
_UNDER: dict[tuple[Level, Level], str] = {
    (Level.PATIENT, Level.STUDY): "SELECT pk FROM studies WHERE patient_pk = ?",
    (Level.PATIENT, Level.SERIES): (
        "SELECT se.pk FROM series se JOIN studies st ON st.pk = se.study_pk WHERE st.patient_pk = ?"
    ),
    (Level.PATIENT, Level.IMAGE): (
        "SELECT i.pk FROM instances i JOIN series se ON se.pk = i.series_pk "
        "JOIN studies st ON st.pk = se.study_pk WHERE st.patient_pk = ?"
    ),
    (Level.STUDY, Level.SERIES): "SELECT pk FROM series WHERE study_pk = ?",
    (Level.STUDY, Level.IMAGE): (
        "SELECT i.pk FROM instances i JOIN series se ON se.pk = i.series_pk WHERE se.study_pk = ?"
    ),
    (Level.SERIES, Level.IMAGE): "SELECT pk FROM instances WHERE series_pk = ?",
}
_LABEL_TABLE: dict[Level, str] = {
    Level.PATIENT: "patient_labels",
    Level.STUDY: "study_labels",
    Level.SERIES: "series_labels",
    Level.IMAGE: "instance_labels",
}
_INSTANCES = (
    "FROM instances i JOIN series se ON se.pk = i.series_pk "
    "JOIN studies st ON st.pk = se.study_pk JOIN patients p ON p.pk = st.patient_pk "
)


@dataclass(frozen=True)
class Audit:
    """Who deletes, through which door (``orthanc-api``, ``cli``, ``retention:<policy>``),
    why, and how long the deleted instances stay in the trash (0: a hard delete)."""

    who: str
    door: str
    reason: str = ""
    grace_seconds: float = 0.0


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed: the blobs to delete now (none when they went to the trash),
    the ancestor that remains, and the audit record's id."""

    blob_keys: list[str]
    remaining: tuple[Level, str] | None  # (level, public id) of the closest remaining ancestor
    deletion_id: int = 0
    instances: int = 0
    size: int = 0


def _rows_at(level: Level, target: Level, chain: dict[Level, int]) -> tuple[str, int]:
    """SQL (``IN (...)`` operand) and parameter naming the rows of ``target`` that the
    deletion of the ``level`` row touches: below it, itself, or its ancestor."""
    if target > level:
        return _UNDER[(level, target)], chain[level]
    return "?", chain[target]


def _chain(conn: Connection, level: Level, pk: int) -> dict[Level, int]:
    """The row key of the resource and of each of its ancestors."""
    chain = {level: pk}
    current = level
    while current in _PARENT_COLUMN:
        rows = conn.execute(
            f"SELECT {_PARENT_COLUMN[current]} FROM {TABLE[current]} WHERE pk = ?",
            (chain[current],),
        )
        chain[Level(current - 1)] = int(rows[0][0])
        current = Level(current - 1)
    return chain


def _labels(conn: Connection, level: Level, chain: dict[Level, int]) -> list[list[str]]:
    """``[level, public id, label]`` of every label the deletion may take away."""
    found: list[list[str]] = []
    for target, table in _LABEL_TABLE.items():
        scope, param = _rows_at(level, target, chain)
        rows = conn.execute(
            f"SELECT r.public_id, l.label FROM {table} l JOIN {TABLE[target]} r "
            f"ON r.pk = l.resource_pk WHERE l.resource_pk IN ({scope})",
            (param,),
        )
        found.extend([target.name, str(public), str(label)] for public, label in rows)
    return found


def _record(
    conn: Connection, level: Level, uid: str, public_id: str, chain: dict[Level, int], audit: Audit
) -> tuple[int, int, int]:
    """Refuse if held, write the ``deletions`` row and (unless hard) the trash rows;
    returns the deletion's id, its instance count and size."""
    studies_scope, studies_param = _rows_at(level, Level.STUDY, chain)
    study_uids = [
        str(r[0])
        for r in conn.execute(
            f"SELECT study_uid FROM studies WHERE pk IN ({studies_scope}) ORDER BY pk",
            (studies_param,),
        )
    ]
    patient_id, patient_name = conn.execute(
        "SELECT patient_id, patient_name FROM patients WHERE pk = ?", (chain[Level.PATIENT],)
    )[0]
    refuse_if_held(conn, study_uids, [str(patient_id)], f"cannot delete {level.name.lower()} {uid}")
    scope, param = _rows_at(level, Level.IMAGE, chain)
    count, size = conn.execute(
        f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM instances WHERE pk IN ({scope})", (param,)
    )[0]
    now = time.time()
    hard = audit.grace_seconds <= 0
    inserted = conn.execute(
        "INSERT INTO deletions (created_at, who, door, reason, level, resource_uid, public_id, "
        "patient_id, patient_name, study_uids, instances, bytes, labels, state, purge_after, "
        "purged_at, restored_at, restored_by, restore_skipped) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', 0) RETURNING pk",
        (
            now,
            audit.who,
            audit.door,
            audit.reason,
            level.name,
            uid,
            public_id,
            str(patient_id),
            str(patient_name),
            json.dumps(study_uids),
            int(count),
            int(size),
            json.dumps([] if hard else _labels(conn, level, chain)),
            "purged" if hard else "trash",
            now + max(audit.grace_seconds, 0.0),
            now if hard else None,
        ),
    )
    deletion_id = int(inserted[0][0])
    if not hard:
        conn.execute(
            "INSERT INTO deleted_instances (deletion_pk, sop_uid, series_uid, study_uid, "
            "patient_id, blob_key, size, sha256, header, origin, received_at, note, tier, "
            "original_size) "
            "SELECT ?, i.sop_uid, se.series_uid, st.study_uid, p.patient_id, i.blob_key, i.size, "
            f"i.sha256, i.header, i.origin, i.received_at, '', i.tier, i.original_size "
            f"{_INSTANCES}"
            f"WHERE i.pk IN ({scope}) ORDER BY i.pk",
            (deletion_id, param),
        )
    return deletion_id, int(count), int(size)


def delete_resource(conn: Connection, level: Level, public_id: str, audit: Audit) -> Deletion:
    """Delete one resource and its descendants, and the ancestors it leaves empty; raises
    NotFound, or OnLegalHold when a study it touches (or its patient) is held."""
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
        chain = _chain(conn, level, pk)
        deletion_id, count, size = _record(conn, level, uid, public_id, chain, audit)
        scope, param = _rows_at(level, Level.IMAGE, chain)
        blob_keys = (
            [
                str(row[0])
                for row in conn.execute(
                    f"SELECT blob_key FROM instances WHERE pk IN ({scope})", (param,)
                )
            ]
            if audit.grace_seconds <= 0
            else []
        )
        gone_series: list[str] = []
        if level <= Level.SERIES:
            series_scope, series_param = _rows_at(level, Level.SERIES, chain)
            gone_series = [
                str(row[0])
                for row in conn.execute(
                    f"SELECT series_uid FROM series WHERE pk IN ({series_scope})", (series_param,)
                )
            ]
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
        _forget_ai(conn, gone_series, 0 if audit.grace_seconds <= 0 else deletion_id)
    return Deletion(blob_keys, remaining, deletion_id, count, size)


def _forget_ai(conn: Connection, series_uids: list[str], keep_in: int) -> None:
    """AI jobs and results (with their feedback) of the series that are gone, kept in the
    deletion ``keep_in`` (0: a hard delete, not kept) for a restore."""
    if keep_in:
        deleted_ai.keep(conn, keep_in, series_uids)
    for table in ("ai_results", "ai_jobs"):
        conn.execute_many(
            f"DELETE FROM {table} WHERE series_uid = ?", [(uid,) for uid in series_uids]
        )
