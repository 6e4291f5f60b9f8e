"""Backup and restore of index and blobs, on SQLite and PostgreSQL: consistent, incremental,
checked against the digests, and restored only into an empty site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.backup import backup, read_manifest, restore
from pacs.core.errors import ConfigError
from pacs.core.index.db import Database
from pacs.core.integrity import Verifier
from storage import FileSystemBlobStore
from tests.core.test_verify import flip_byte
from tests.factories import make_series, to_bytes


def _reset_postgres_schema(url: str) -> None:
    """Empty the test schema (the restore target must hold no tables)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        conn.execute(f'DROP SCHEMA "{row[0]}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{row[0]}"')


def test_backup_is_incremental_and_restores_bit_for_bit(
    archive: Archive, index_url: str, tmp_path: Path
) -> None:
    first = make_series(3)
    for ds in first:
        archive.store(to_bytes(ds), "TEST")
    target = tmp_path / "backup"
    result = backup(archive.index.database, archive.blobs, target)
    assert (result.instances, result.copied, result.skipped, result.problems) == (3, 3, 0, [])
    manifest = read_manifest(target)
    assert manifest is not None and manifest["counts"]["instances"] == 3
    assert manifest["complete"] and len(manifest["blobs"]) == 3

    second = make_series(2)
    for ds in second:
        archive.store(to_bytes(ds), "TEST")
    result = backup(archive.index.database, archive.blobs, target)
    assert (result.instances, result.copied, result.skipped) == (5, 2, 3)
    manifest = read_manifest(target)
    assert manifest is not None
    index_files = [p.name for p in target.glob("index-*") if not p.name.endswith(".partial")]
    assert index_files == [manifest["index"]["file"]]  # the older snapshot was removed
    originals = {
        str(ds.SOPInstanceUID): archive.read_instance(archive.instance(str(ds.SOPInstanceUID)))
        for ds in first + second
    }
    archive.close()

    if index_url.startswith("sqlite"):
        restored_url = f"sqlite:///{tmp_path / 'restored' / 'index.sqlite'}"
    else:
        _reset_postgres_schema(index_url)
        restored_url = index_url
    blobs = FileSystemBlobStore(tmp_path / "restored" / "blobs")
    database = Database(restored_url)
    try:
        result = restore(database, blobs, target)
        assert (result.copied, result.problems) == (5, [])
        assert Verifier(database, blobs).run().ok
        with pytest.raises(ConfigError, match="empty site"):
            restore(database, blobs, target)  # never over an existing site
    finally:
        database.close()
    restored = Archive.open(restored_url, blobs)
    try:
        for sop, content in originals.items():
            assert restored.read_instance(restored.instance(sop)) == content
        assert restored.statistics()["instances"] == 5
    finally:
        restored.close()


def test_a_corrupt_hot_copy_is_not_backed_up_as_good(archive: Archive, tmp_path: Path) -> None:
    datasets = make_series(2)
    for ds in datasets:
        archive.store(to_bytes(ds), "TEST")
    stored = archive.instance(str(datasets[0].SOPInstanceUID))
    path = archive.instance_path(stored)
    assert path is not None
    flip_byte(path)
    result = backup(archive.index.database, archive.blobs, tmp_path / "backup")
    assert len(result.problems) == 1 and stored.blob_key in result.problems[0]
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert not manifest["complete"] and stored.blob_key not in manifest["blobs"]


def test_an_instance_deleted_after_the_snapshot_does_not_spoil_the_backup(
    archive: Archive, tmp_path: Path
) -> None:
    datasets = make_series(3)
    for ds in datasets:
        archive.store(to_bytes(ds), "TEST")
    doomed = archive.instance(str(datasets[1].SOPInstanceUID))
    deleted: list[bool] = []

    def delete_once() -> None:
        """Delete one instance (row, then blob) right after the first snapshot."""
        if deleted:
            return
        with archive.index.database.reader() as conn:
            conn.execute("DELETE FROM instances WHERE sop_uid = ?", (doomed.sop_uid,))
        archive.blobs.delete(doomed.blob_key)
        deleted.append(True)

    result = backup(
        archive.index.database, archive.blobs, tmp_path / "backup", after_snapshot=delete_once
    )
    assert result.problems == [] and result.instances == 2
    manifest = read_manifest(tmp_path / "backup")
    assert manifest is not None and manifest["complete"]
    assert doomed.blob_key not in manifest["blobs"] and len(manifest["blobs"]) == 2
