"""The filesystem blob store: atomic durable writes, key validation, crash leftovers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage import BlobNotFound, BlobStoreError, FileSystemBlobStore, new_key


def test_put_open_delete(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_key()
    info = store.put(key, [b"abc", b"def"])
    assert info.size == 6
    assert info.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    with store.open(key) as handle:
        assert handle.read() == b"abcdef"
    assert store.exists(key)
    assert list(store.keys()) == [key]
    path = store.local_path(key)
    assert path is not None and path.parent.name == key[:8] and path.parent.parent == tmp_path
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(BlobNotFound):
        store.open(key)
    store.delete(key)  # deleting twice is fine


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "A" * 40, "", "abc", "0" * 39 + "/", "1.2.3.4", "0" * 32]
)
def test_keys_that_could_escape_are_refused(tmp_path: Path, key: str) -> None:
    store = FileSystemBlobStore(tmp_path)
    with pytest.raises(BlobStoreError):
        store.put(key, [b"x"])
    with pytest.raises(BlobStoreError):
        store.open(key)


def test_a_key_is_written_once(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_key()
    store.put(key, [b"first"])
    with pytest.raises(BlobStoreError):
        store.put(key, [b"second"])
    with store.open(key) as handle:
        assert handle.read() == b"first"


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_key()

    def chunks():
        yield b"partial"
        raise RuntimeError("peer vanished")

    with pytest.raises(RuntimeError):
        store.put(key, chunks())
    assert not store.exists(key)
    assert list(tmp_path.rglob("*.partial")) == []


def test_partial_writes_left_by_a_crash_are_removed(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_key()
    leftover = tmp_path / key[:8] / f"{key}.partial"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    assert list(store.keys()) == []
    assert store.remove_partial_writes() == 1
    assert not leftover.exists()


def test_sync_makes_names_durable(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    key = new_key()
    store.put(key, [b"x"])
    assert store._unsynced == {tmp_path / key[:8]}
    store.sync()
    assert store._unsynced == set()
    store.sync()  # nothing pending: a no-op


def test_staged_blobs_are_invisible_until_published(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path / "store")
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 3_000_000)
    written, copied = new_key(), new_key()
    info = store.stage(written, [b"abc", b"def"])
    assert info.size == 6 and info.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert store.stage_copy(copied, source) == 3_000_000
    assert not store.exists(written) and not store.exists(copied)
    assert list(store.keys()) == []
    store.publish([written, copied], drop_cache=True)
    with store.open(written) as handle:
        assert handle.read() == b"abcdef"
    with store.open(copied) as handle:
        assert handle.read() == source.read_bytes()
    assert sorted(store.keys()) == sorted([written, copied])
    store.stage(written, [b"again"])
    with pytest.raises(BlobStoreError):  # a published blob is never replaced
        store.publish([written])


def test_staged_blobs_left_unpublished_are_discarded_or_cleaned_at_start(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    dropped, crashed = new_key(), new_key()
    store.stage(dropped, [b"one"])
    store.stage(crashed, [b"two"])
    store.discard_staged([dropped])
    assert len(list(tmp_path.rglob("*.partial"))) == 1
    assert FileSystemBlobStore(tmp_path).remove_partial_writes() == 1  # a restart
    assert list(tmp_path.rglob("*.partial")) == [] and list(store.keys()) == []
