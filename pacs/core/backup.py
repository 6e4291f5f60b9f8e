"""Backup and restore of a whole site (index and blobs), consistent while the server runs.

A backup folder holds ``index-<stamp>.sqlite`` (or ``.pgdump``), ``blobs/YYYYMMDD/<key>``
and ``manifest.json``, written last and atomically: a backup is complete when its manifest
names it. The index is snapshotted first and only the blobs that snapshot refers to are
copied (blobs are immutable, and written before their index row commits, so every one of
them exists), each checked against the SHA-256 the index recorded. A later backup into the
same folder copies only blobs not already there with the same digest (incremental).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacs import __version__
from pacs.core.errors import ConfigError
from pacs.core.index.blob_rows import indexed_keys
from pacs.core.index.db import Database
from pacs.core.index_snapshot import (
    Snapshot,
    SnapshotBlob,
    restore_postgresql,
    restore_sqlite,
    take_snapshot,
)
from storage import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    FileSystemBlobStore,
    RateLimiter,
    copy_blob,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass
class BackupResult:
    """What a backup or restore did."""

    folder: Path
    instances: int = 0
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, verb: str = "backed up") -> str:
        return (
            f"{verb} {self.instances} instances to/from {self.folder}: {self.copied} blobs "
            f"copied ({self.bytes_copied / 1e6:.1f} MB), {self.skipped} already there, "
            f"{len(self.problems)} problem(s), {self.seconds:.1f} s"
        )


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when there is no complete backup in it."""
    try:
        with open(folder / MANIFEST, encoding="utf-8") as handle:
            manifest: dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        return None
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{folder / MANIFEST}: unknown backup format {manifest.get('format')}")
    return manifest


def _write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_checked(
    sources: list[BlobStore], target: BlobStore, blob: SnapshotBlob, limiter: RateLimiter | None
) -> str:
    """Copy from the first source whose copy has the recorded digest; '' or the problem."""
    reasons = []
    for source in sources:
        target.delete(blob.key)
        try:
            written = copy_blob(source, target, blob.key, limiter)
        except BlobNotFound:
            reasons.append("missing")
            continue
        except (BlobStoreError, OSError) as exc:
            reasons.append(f"unreadable ({exc})")
            continue
        if (written.size, written.sha256) == (blob.size, blob.sha256):
            return ""
        target.delete(blob.key)
        reasons.append(f"corrupt (sha256 {written.sha256})")
    return f"blob {blob.key} of {blob.sop_uid}: " + ", ".join(reasons)


def _copy_snapshot(
    snapshot: Snapshot,
    sources: list[BlobStore],
    store: FileSystemBlobStore,
    known: dict[str, list[Any]],
    result: BackupResult,
    limiter: RateLimiter | None,
) -> tuple[dict[str, list[Any]], list[tuple[SnapshotBlob, str]]]:
    """Copy the snapshot's blobs not already in the backup; (what is in it, what failed)."""
    blobs: dict[str, list[Any]] = {}
    failed: list[tuple[SnapshotBlob, str]] = []
    for blob in snapshot.blobs:
        path = store.local_path(blob.key)
        if (
            known.get(blob.key) == [blob.size, blob.sha256]
            and path is not None
            and path.is_file()
            and path.stat().st_size == blob.size
        ):
            result.skipped += 1
        else:
            problem = _copy_checked(sources, store, blob, limiter)
            if problem:
                failed.append((blob, problem))
                continue
            result.copied += 1
            result.bytes_copied += blob.size
        blobs[blob.key] = [blob.size, blob.sha256]
    return blobs, failed


def backup(
    database: Database,
    hot: BlobStore,
    folder: Path,
    *,
    replica: BlobStore | None = None,
    rate_bytes: float = 0.0,
    after_snapshot: Callable[[], None] | None = None,
) -> BackupResult:
    """Back the site up into ``folder`` (incrementally when it holds an earlier backup).

    A blob that vanished after the snapshot (its instance deleted or replaced meanwhile) is
    no fault of the archive: the snapshot is taken again (up to three times) and the copy
    resumes, already copied blobs being skipped. ``after_snapshot`` runs after each snapshot
    (tests use it to delete an instance at the worst moment).
    """
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(folder)
    known: dict[str, list[Any]] = dict(previous["blobs"]) if previous else {}
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    store = FileSystemBlobStore(folder / "blobs")
    limiter = RateLimiter(rate_bytes) if rate_bytes > 0 else None
    sources = [hot] if replica is None else [hot, replica]
    for attempt in range(1, 4):
        snapshot = take_snapshot(database, folder, stamp)
        if after_snapshot is not None:
            after_snapshot()
        result = BackupResult(folder, instances=snapshot.counts["instances"])
        blobs, failed = _copy_snapshot(snapshot, sources, store, known, result, limiter)
        known.update(blobs)
        still_there = indexed_keys(database, [blob.key for blob, _ in failed], purging=False)
        vanished = [blob for blob, _ in failed if blob.key not in still_there]
        if not vanished or attempt == 3:
            break
        log.info("backup: %d blob(s) deleted since the snapshot; snapshot again", len(vanished))
    result.problems = [problem for _, problem in failed]
    for problem in result.problems:
        log.error("backup: %s", problem)
    store.sync()
    manifest = {
        "format": FORMAT,
        "created_at": time.time(),
        "pacs_version": __version__,
        "complete": not result.problems,
        "index": {
            "dialect": snapshot.dialect,
            "file": snapshot.path.name,
            "size": snapshot.path.stat().st_size,
            "sha256": file_sha256(snapshot.path),
            "schema": snapshot.schema,
        },
        "counts": snapshot.counts,
        "blobs_copied": result.copied,
        "blobs_skipped": result.skipped,
        "problems": result.problems,
        "blobs": blobs,
    }
    _write_json_atomically(folder / MANIFEST, manifest)
    if previous and previous["index"]["file"] != snapshot.path.name:
        (folder / previous["index"]["file"]).unlink(missing_ok=True)
    result.seconds = time.monotonic() - started
    return result


def _check_site_is_empty(database: Database, blobs: BlobStore) -> None:
    """Refuse to restore over anything: no blob, no index tables."""
    if next(iter(blobs.keys()), None) is not None:
        raise ConfigError("the blob store already holds blobs: restore needs an empty site")
    if database.dialect == "sqlite":
        path = Path(database.sqlite_path)
        if path.exists() and path.stat().st_size > 0:
            raise ConfigError(f"the index {path} already exists: restore needs an empty site")
        return
    with database.reader() as conn:
        rows = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'instances' "
            "AND table_schema = current_schema()"
        )
    if int(rows[0][0]):
        raise ConfigError("the index database already has tables: restore needs an empty site")


def restore(database: Database, blobs: BlobStore, folder: Path) -> BackupResult:
    """Restore the backup in ``folder`` into an empty site (index and blob store)."""
    started = time.monotonic()
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConfigError(f"no complete backup in {folder} (no {MANIFEST})")
    index = manifest["index"]
    if index["dialect"] != database.dialect:
        raise ConfigError(
            f"the backup holds a {index['dialect']} index; this site uses {database.dialect}"
        )
    index_file = folder / index["file"]
    if file_sha256(index_file) != index["sha256"]:
        raise ConfigError(f"{index_file} does not match its SHA-256 in the manifest")
    _check_site_is_empty(database, blobs)
    source = FileSystemBlobStore(folder / "blobs")
    result = BackupResult(folder, instances=int(manifest["counts"]["instances"]))
    for key, (size, sha256) in manifest["blobs"].items():
        try:
            written = copy_blob(source, blobs, key)
        except (BlobStoreError, OSError) as exc:
            result.problems.append(f"blob {key}: {exc}")
            continue
        if (written.size, written.sha256) != (size, sha256):
            blobs.delete(key)
            result.problems.append(f"blob {key}: corrupt in the backup (sha256 {written.sha256})")
            continue
        result.copied += 1
        result.bytes_copied += size
    blobs.sync()
    if database.dialect == "sqlite":
        restore_sqlite(index_file, database)
    else:
        restore_postgresql(index_file, database, str(index.get("schema") or "public"))
    _all_on_hot_tier(database)
    result.seconds = time.monotonic() - started
    return result


def _all_on_hot_tier(database: Database) -> None:
    """Restored blobs are all written to the hot tier: say so in the index (the policies
    move them again), and forget moves that were under way when the backup was taken."""
    try:
        with database.reader() as conn, conn.transaction():
            conn.execute("UPDATE instances SET tier = 'hot' WHERE tier <> 'hot'")
            conn.execute("DELETE FROM tier_moves")
    except Exception:  # a backup from before storage tiers (index migration 6)
        log.debug("restored index has no storage tiers")
    try:
        with database.reader() as conn, conn.transaction():
            conn.execute("UPDATE deleted_instances SET tier = 'hot' WHERE tier <> 'hot'")
    except Exception:  # a backup from before index migration 8: trash rows have no tier
        log.debug("restored index has no tier for trashed instances")


__all__ = ["BackupResult", "backup", "read_manifest", "restore"]
