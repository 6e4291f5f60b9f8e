"""A consistent snapshot of the index, taken while the server writes, with the list of
blobs that snapshot refers to (read from the same snapshot, so no blob is missed and no
later instance is half-included).

- SQLite: the online backup API (``sqlite3.Connection.backup``) copies the database into
  the backup folder; the blob list is then read from the copy.
- PostgreSQL: a REPEATABLE READ transaction exports its snapshot, ``pg_dump --snapshot``
  dumps exactly that state (custom format, the current schema only), and the blob list is
  read in the same transaction. Needs ``pg_dump`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pacs.core.errors import ConfigError
from pacs.core.index.db import Database

_BLOBS_SQL = (
    "SELECT i.blob_key, i.size, i.sha256, i.sop_uid, st.study_uid FROM instances i "
    "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk ORDER BY i.pk"
)
# Instances in the trash are restorable, so their blobs are backed up too (not those of a
# deletion being purged: their blobs may already be gone).
_TRASH_SQL = (
    "SELECT d.blob_key, d.size, d.sha256, d.sop_uid, d.study_uid FROM deleted_instances d "
    "JOIN deletions x ON x.pk = d.deletion_pk WHERE x.state <> 'purging' ORDER BY d.pk"
)
_COUNTED = ("patients", "studies", "series", "instances")


@dataclass(frozen=True)
class SnapshotBlob:
    """One blob the snapshot refers to, with the digest the index recorded."""

    key: str
    size: int
    sha256: str
    sop_uid: str
    study_uid: str


@dataclass(frozen=True)
class Snapshot:
    """The index file written, its kind, what it counts and the blobs it refers to."""

    dialect: str
    path: Path
    counts: dict[str, int]
    blobs: list[SnapshotBlob]
    schema: str = ""


def _counts(rows_of: Any) -> dict[str, int]:
    counts = {name: int(rows_of(f"SELECT COUNT(*) FROM {name}")[0][0]) for name in _COUNTED}
    counts["total_size"] = int(rows_of("SELECT COALESCE(SUM(size), 0) FROM instances")[0][0])
    return counts


def _blobs(rows: Sequence[Sequence[Any]]) -> list[SnapshotBlob]:
    return [SnapshotBlob(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_sqlite(database: Database, target: Path) -> Snapshot:
    """Copy the live SQLite index into ``target`` with the online backup API."""
    source = sqlite3.connect(database.sqlite_path, timeout=60.0)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        counts = _counts(lambda sql: copy.execute(sql).fetchall())
        blobs = _blobs(copy.execute(_BLOBS_SQL).fetchall() + copy.execute(_TRASH_SQL).fetchall())
    finally:
        copy.close()
        source.close()
    _fsync(partial)
    os.replace(partial, target)
    return Snapshot("sqlite", target, counts, blobs)


def pg_tool(name: str) -> str:
    """The path of ``pg_dump`` / ``pg_restore``, or a clear error."""
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not on PATH: install the PostgreSQL client tools")
    return found


def snapshot_postgresql(database: Database, target: Path) -> Snapshot:
    """``pg_dump`` of the current schema at an exported snapshot, plus its blob list."""
    import psycopg

    dump = pg_tool("pg_dump")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with psycopg.connect(database.url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot(), current_schema()").fetchone()
        assert row is not None
        snapshot_id, schema = str(row[0]), str(row[1])
        counts = _counts(lambda sql: conn.execute(sql).fetchall())
        blobs = _blobs(conn.execute(_BLOBS_SQL).fetchall() + conn.execute(_TRASH_SQL).fetchall())
        result = subprocess.run(
            [
                dump,
                f"--dbname={database.url}",
                f"--snapshot={snapshot_id}",
                f"--schema={schema}",
                "--format=custom",
                "--no-owner",
                f"--file={partial}",
            ],
            capture_output=True,
            text=True,
            timeout=24 * 3600,
        )
        conn.rollback()
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"pg_dump failed: {result.stderr.strip()}")
    _fsync(partial)
    os.replace(partial, target)
    return Snapshot("postgresql", target, counts, blobs, schema)


def take_snapshot(database: Database, folder: Path, stamp: str) -> Snapshot:
    """The index snapshot for this backup, named after its time stamp."""
    if database.dialect == "sqlite":
        return snapshot_sqlite(database, folder / f"index-{stamp}.sqlite")
    return snapshot_postgresql(database, folder / f"index-{stamp}.pgdump")


def restore_sqlite(source: Path, database: Database) -> None:
    """Copy the snapshot to where the index lives (which must not exist yet)."""
    destination = Path(database.sqlite_path)
    if destination.exists() and destination.stat().st_size > 0:
        raise ConfigError(f"the index {destination} already exists: restore needs an empty site")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    shutil.copyfile(source, partial)
    _fsync(partial)
    os.replace(partial, destination)
    _fsync(destination.parent)


def restore_postgresql(source: Path, database: Database, schema: str) -> None:
    """``pg_restore`` into a database whose target schema holds no tables (an empty schema
    of that name is dropped first, so the dump recreates it as it was)."""
    import psycopg

    restore = pg_tool("pg_restore")
    with psycopg.connect(database.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchone()
        if row is not None and int(row[0]) > 0:
            raise ConfigError(f"schema {schema} already holds tables: restore needs an empty site")
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if exists:
            conn.execute(f'DROP SCHEMA "{schema}"')
    result = subprocess.run(
        [restore, f"--dbname={database.url}", "--no-owner", "--exit-on-error", str(source)],
        capture_output=True,
        text=True,
        timeout=24 * 3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_restore failed: {result.stderr.strip()}")
