"""Repair from a replica: verify and the scrub restore missing or corrupt hot copies, after
checking the replica's own SHA-256."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.integrity import Verifier
from pacs.core.repair import ReplicaRepairer
from pacs.core.scrub import Scrubber
from storage import FileSystemBlobStore, ReplicatedBlobStore
from tests.conftest import REPO
from tests.core.test_verify import flip_byte
from tests.factories import make_series, to_bytes


@pytest.fixture
def mirrored(index_url: str, tmp_path: Path) -> Iterator[Archive]:
    """An Archive writing to a hot folder mirrored to a replica folder."""
    store = ReplicatedBlobStore(
        FileSystemBlobStore(tmp_path / "hot"), FileSystemBlobStore(tmp_path / "replica")
    )
    archive = Archive.open(index_url, store)
    try:
        yield archive
    finally:
        archive.close()


def _damage(archive: Archive, count: int = 4) -> tuple[list[str], FileSystemBlobStore]:
    """Store ``count`` instances, flip a byte in the first hot copy, delete the second."""
    datasets = make_series(count)
    for ds in datasets:
        archive.store(to_bytes(ds), "TEST")
    sops = [str(ds.SOPInstanceUID) for ds in datasets]
    assert isinstance(archive.blobs, ReplicatedBlobStore)
    hot = archive.blobs.primary
    assert isinstance(hot, FileSystemBlobStore)
    path = hot.local_path(archive.instance(sops[0]).blob_key)
    assert path is not None
    flip_byte(path)
    hot.delete(archive.instance(sops[1]).blob_key)
    return sops, hot


def test_verify_then_repair_from_the_replica(mirrored: Archive) -> None:
    sops, hot = _damage(mirrored)
    assert isinstance(mirrored.blobs, ReplicatedBlobStore)
    replica = mirrored.blobs.replica
    verifier = Verifier(mirrored.index.database, hot)
    report = verifier.run()
    assert {p.sop_uid for p in report.problems} == {sops[0], sops[1]}
    # A replica copy that is corrupt too is never copied over.
    third = mirrored.instance(sops[2])
    replica_path = replica.local_path(third.blob_key)
    assert replica_path is not None
    flip_byte(replica_path)
    hot.delete(third.blob_key)
    report = verifier.run()
    repairer = ReplicaRepairer(hot, replica)
    outcome = {p.sop_uid: repairer(p) for p in report.problems}
    assert outcome == {sops[0]: True, sops[1]: True, sops[2]: False}
    after = verifier.run()
    assert [p.sop_uid for p in after.problems] == [sops[2]]
    for sop in sops[:2]:
        stored = mirrored.instance(sop)
        assert len(mirrored.read_instance(stored)) == stored.size


def test_scrub_repairs_from_the_replica(mirrored: Archive) -> None:
    sops, hot = _damage(mirrored)
    assert isinstance(mirrored.blobs, ReplicatedBlobStore)
    scrubber = Scrubber(
        mirrored.index.database,
        hot,
        rate_bytes=100e6,
        repair=ReplicaRepairer(hot, mirrored.blobs.replica),
    )
    scrubber.run_pass()
    states = {p["sop_uid"]: p["state"] for p in scrubber.status()["problems"]}
    assert states == {sops[0]: "repaired", sops[1]: "repaired"}
    assert Verifier(mirrored.index.database, hot).run().ok


def test_verify_repair_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "site.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data}"\n[storage]\nreplica_path = "{tmp_path / "nas"}"\n',
        encoding="utf-8",
    )
    store = ReplicatedBlobStore(
        FileSystemBlobStore(data / "blobs"), FileSystemBlobStore(tmp_path / "nas")
    )
    archive = Archive.open(f"sqlite:///{data / 'index.sqlite'}", store)
    try:
        sops, _ = _damage(archive)
    finally:
        archive.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pacs", "verify", "--config", str(config), *args]
        return subprocess.run(
            command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120
        )

    assert pacs().returncode == 1
    repaired = pacs("--repair", "--json")
    report = json.loads(repaired.stdout)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert len(report["repaired"]) == 2 and not report["unrepaired"]
    assert {p["sop_uid"] for p in report["missing"] + report["corrupt"]} == set(sops[:2])
    final = pacs()
    assert final.returncode == 0 and "0 missing, 0 corrupt" in final.stdout
