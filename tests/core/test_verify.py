"""Verification of stored objects against the index: missing, corrupt, orphans; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.integrity import Verifier
from pacs.storage_cli import parse_since
from storage import FileSystemBlobStore, new_key
from tests.conftest import REPO
from tests.factories import make_series, to_bytes


def _store_series(archive: Archive, count: int = 4) -> list[str]:
    datasets = make_series(count)
    for ds in datasets:
        archive.store(to_bytes(ds), "TEST")
    return [str(ds.SOPInstanceUID) for ds in datasets]


def flip_byte(path: Path, offset: int = -10) -> None:
    """Corrupt a file in place: one byte changed, size unchanged."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_verify_finds_missing_corrupt_and_orphans(archive: Archive) -> None:
    sops = _store_series(archive)
    corrupt = archive.instance(sops[0])
    missing = archive.instance(sops[1])
    corrupt_path = archive.instance_path(corrupt)
    assert corrupt_path is not None
    flip_byte(corrupt_path)
    archive.blobs.delete(missing.blob_key)
    old_orphan, young_orphan = new_key(), new_key()
    archive.blobs.put(old_orphan, [b"left by a crash"])
    archive.blobs.put(young_orphan, [b"in flight"])
    orphan_path = archive.blobs.local_path(old_orphan)
    assert orphan_path is not None
    _age(orphan_path, 7200)

    verifier = Verifier(archive.index.database, archive.blobs)
    report = verifier.run()
    assert report.checked == 4
    assert [(p.sop_uid, p.blob_key) for p in report.missing] == [(sops[1], missing.blob_key)]
    [bad] = report.corrupt
    assert (bad.sop_uid, bad.study_uid, bad.blob_key) == (
        sops[0],
        corrupt.study_uid,
        corrupt.blob_key,
    )
    assert bad.expected_sha256 == corrupt.sha256 and bad.found_sha256 != corrupt.sha256
    assert bad.found_size == bad.expected_size == corrupt.size
    assert [o.blob_key for o in report.orphans] == [old_orphan]
    assert report.recent_unindexed == 1
    assert not report.ok
    assert "1 missing, 1 corrupt, 1 orphan" in report.summary()

    # Removal deletes only the old orphan, nothing indexed, nothing young.
    report = verifier.run(remove_orphans=True)
    assert [o.removed for o in report.orphans] == [True]
    assert not archive.blobs.exists(old_orphan)
    assert archive.blobs.exists(young_orphan)
    assert archive.blobs.exists(corrupt.blob_key)


def test_verify_passes_on_a_sound_archive_and_honours_since(archive: Archive) -> None:
    _store_series(archive, 3)
    verifier = Verifier(archive.index.database, archive.blobs)
    report = verifier.run(rate_bytes=50e6)
    assert report.ok and report.checked == 3 and report.bytes_read > 0
    assert verifier.run(since=time.time() + 60).checked == 0


def test_parse_since() -> None:
    assert parse_since("") == 0.0
    assert parse_since("2024-01-31") == parse_since("20240131") == 1706659200.0
    assert parse_since("2024-01-31T01:00:00") == 1706662800.0
    assert parse_since("2d", now=1_000_000.0) == 1_000_000.0 - 2 * 86400
    with pytest.raises(ValueError):
        parse_since("last tuesday")


def _pacs(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    return subprocess.run(
        [sys.executable, "-m", "pacs", "verify", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def test_verify_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "site.toml"
    config.write_text(f'[server]\ndata_dir = "{data}"\n', encoding="utf-8")
    archive = Archive.open(
        f"sqlite:///{data / 'index.sqlite'}", FileSystemBlobStore(data / "blobs")
    )
    try:
        sops = _store_series(archive, 3)
        result = _pacs(config)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "checked 3 objects" in result.stdout and "OK" in result.stdout
        stored = archive.instance(sops[2])
        path = archive.instance_path(stored)
        assert path is not None
        flip_byte(path, 200)
    finally:
        archive.close()
    result = _pacs(config, "--rate", "100")
    assert result.returncode == 1
    assert (
        f"CORRUPT  sop={sops[2]} study={stored.study_uid} blob={stored.blob_key}" in result.stdout
    )
    assert "FAILED" in result.stdout
    result = _pacs(config, "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["ok"]
    assert [p["sop_uid"] for p in report["corrupt"]] == [sops[2]]
    assert _pacs(config, "--since", "yesterday").returncode == 2
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(f'[server]\ndata_dir = "{tmp_path / "nothing"}"\n', encoding="utf-8")
    result = _pacs(elsewhere)
    assert result.returncode == 2 and "no index at" in result.stderr
