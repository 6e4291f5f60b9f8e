"""The replicated store: two durable copies before put returns, reads fall back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage import (
    BlobStoreError,
    FileSystemBlobStore,
    ReplicatedBlobStore,
    digest_blob,
    new_key,
)


def test_put_writes_both_copies_and_reads_fall_back(tmp_path: Path) -> None:
    hot, replica = FileSystemBlobStore(tmp_path / "hot"), FileSystemBlobStore(tmp_path / "nas")
    store = ReplicatedBlobStore(hot, replica)
    key = new_key()
    info = store.put(key, iter([b"a" * 2_000_000, b"b" * 10]))  # chunks consumed once
    store.sync()
    assert digest_blob(hot, key) == digest_blob(replica, key) == info
    assert info.sha256 == hashlib.sha256(b"a" * 2_000_000 + b"b" * 10).hexdigest()
    assert store.local_path(key) == hot.local_path(key)
    hot.delete(key)
    with store.open(key) as handle:
        assert handle.read(1) == b"a"
    assert store.local_path(key) == replica.local_path(key)
    store.delete(key)
    assert not replica.exists(key)


def test_a_replica_that_cannot_be_written_fails_the_put(tmp_path: Path) -> None:
    hot, replica = FileSystemBlobStore(tmp_path / "hot"), FileSystemBlobStore(tmp_path / "nas")
    store = ReplicatedBlobStore(hot, replica)
    key = new_key()
    replica.put(key, [b"already there"])  # the replica refuses this key
    with pytest.raises(BlobStoreError, match="replica"):
        store.put(key, [b"new content"])
    assert not hot.exists(key)  # never a single acknowledged copy
    with pytest.raises(BlobStoreError, match="replica"):
        store.put(key, iter([b"streamed content"]))
    assert not hot.exists(key)


def test_in_memory_content_is_written_to_both_at_once(tmp_path: Path) -> None:
    hot, replica = FileSystemBlobStore(tmp_path / "hot"), FileSystemBlobStore(tmp_path / "nas")
    store = ReplicatedBlobStore(hot, replica)
    keys = [new_key() for _ in range(20)]
    for key in keys:
        store.put(key, [key.encode() * 1000])
    store.sync()
    for key in keys:
        assert digest_blob(hot, key) == digest_blob(replica, key)
