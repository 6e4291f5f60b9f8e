"""The S3 blob store against a real S3 server process (moto_server, see conftest.py), and the
BlobStore contract checked on the filesystem store and the S3 store alike."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    FileSystemBlobStore,
    ReplicatedBlobStore,
    copy_blob,
    digest_blob,
    new_key,
    open_blob_store,
)
from storage.s3 import S3BlobStore
from tests.conftest import free_port
from tests.s3_server import CREDENTIALS
from tests.storage.conftest import bucket_of

MB = 1 << 20


def pattern(size: int, seed: int = 0) -> Iterator[bytes]:
    """``size`` bytes of varied content, 1 MiB at a time (never held whole)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    sent = 0
    while sent < size:
        piece = block[: min(MB, size - sent)]
        sent += len(piece)
        yield piece


def pattern_digest(size: int, seed: int = 0) -> str:
    digest = hashlib.sha256()
    for piece in pattern(size, seed):
        digest.update(piece)
    return digest.hexdigest()


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each kind of store, through open_blob_store as the server builds them."""
    if request.param == "filesystem":
        return open_blob_store(tmp_path / "blobs")
    return open_blob_store(request.getfixturevalue("s3_url"))


def pending(client: Any, url: str) -> list[str]:
    """Multipart uploads neither completed nor aborted in the URL's bucket."""
    reply = client.list_multipart_uploads(Bucket=bucket_of(url))
    return [str(upload["Key"]) for upload in reply.get("Uploads", [])]


# --- the contract, on every store ------------------------------------------------------------


def test_put_then_open_gives_the_same_bytes(store: BlobStore) -> None:
    key = new_key()
    info = store.put(key, [b"hello ", b"", b"world"])
    store.sync()
    assert (info.size, info.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert store.exists(key)
    with store.open(key) as handle:
        assert handle.read() == b"hello world"
    assert digest_blob(store, key) == info


def test_an_empty_blob(store: BlobStore) -> None:
    key = new_key()
    assert store.put(key, []).size == 0
    with store.open(key) as handle:
        assert handle.read() == b""


def test_a_large_blob_is_streamed_in_bounded_memory(store: BlobStore) -> None:
    size = 40 * MB + 12345
    key = new_key()
    tracemalloc.start()
    try:
        info = store.put(key, pattern(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * MB, f"put held {peak / MB:.0f} MB for a {size / MB:.0f} MB blob"
    assert (info.size, info.sha256) == (size, pattern_digest(size))
    assert digest_blob(store, key) == info
    with store.open(key) as handle:
        handle.seek(size - 10)
        assert handle.read() == b"".join(pattern(size))[-10:]


def test_open_is_seekable_like_a_file(store: BlobStore) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    key = new_key()
    store.put(key, [data])
    with store.open(key) as handle:
        assert handle.read(4) == data[:4]
        handle.seek(200_000)
        assert handle.read(10) == data[200_000:200_010]
        assert handle.tell() == 200_010
        handle.seek(-5, 2)
        assert handle.read() == data[-5:]
        handle.seek(3)
        assert handle.read(2) == data[3:5]
        handle.seek(10, 1)
        assert handle.read(1) == data[15:16]


def test_keys_exists_and_delete(store: BlobStore) -> None:
    keys = [new_key() for _ in range(3)]
    for number, key in enumerate(keys):
        store.put(key, [b"blob %d" % number])
    assert set(store.keys()) == set(keys)
    store.delete(keys[0])
    store.delete(keys[0])  # deleting a missing blob is not an error
    assert not store.exists(keys[0]) and store.exists(keys[1])
    assert set(store.keys()) == set(keys[1:])
    with pytest.raises(BlobNotFound):
        store.open(keys[0])
    with pytest.raises(BlobNotFound):
        digest_blob(store, keys[0])


def test_an_invalid_key_is_refused(store: BlobStore) -> None:
    for bad in ("../../etc/passwd", "20240101" + "g" * 32, "x"):
        with pytest.raises(BlobStoreError):
            store.put(bad, [b"x"])
        with pytest.raises(BlobStoreError):
            store.open(bad)


def test_the_store_tells_when_a_blob_was_written(store: BlobStore) -> None:
    key = new_key()
    store.put(key, [b"x"])
    written = store.modified_time(key)  # type: ignore[attr-defined]
    assert written is not None and abs(time.time() - written) < 120
    assert store.modified_time(new_key()) is None  # type: ignore[attr-defined]


# --- S3 only ---------------------------------------------------------------------------------


def test_blobs_are_objects_under_the_prefix_and_day(s3_url: str, s3_client: Any) -> None:
    store = open_blob_store(s3_url)
    key = new_key()
    info = store.put(key, [b"payload"])
    head = s3_client.head_object(Bucket=bucket_of(s3_url), Key=f"archive/{key[:8]}/{key}")
    assert head["ContentLength"] == 7
    assert head["Metadata"]["sha256"] == info.sha256
    assert store.local_path(key) is None


def test_a_put_interrupted_mid_stream_leaves_nothing(s3_url: str, s3_client: Any) -> None:
    store = open_blob_store(s3_url)

    def failing(size: int) -> Iterator[bytes]:
        yield from pattern(size)
        raise RuntimeError("the sender went away")

    for size in (20 * MB, 100):  # after two multipart parts; before the first
        key = new_key()
        with pytest.raises(RuntimeError, match="went away"):
            store.put(key, failing(size))
        assert not store.exists(key)
        assert key not in set(store.keys())
    assert pending(s3_client, s3_url) == []


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for tests that need no server."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def test_an_unreachable_server_fails_fast(credentials: None) -> None:
    store = open_blob_store(f"s3://bucket?endpoint=http://127.0.0.1:{free_port()}")
    key = new_key()
    for attempt in (
        lambda: store.put(key, [b"x"]),
        lambda: store.open(key),
        lambda: store.exists(key),
        lambda: list(store.keys()),
    ):
        started = time.monotonic()
        with pytest.raises(BlobStoreUnavailable, match="does not answer"):
            attempt()
        assert time.monotonic() - started < 5


def test_a_missing_bucket_is_said_plainly(s3_endpoint: str) -> None:
    store = open_blob_store(f"s3://no-such-bucket-here?endpoint={s3_endpoint}")
    with pytest.raises(BlobStoreError, match=r"does not exist.*create_bucket=true"):
        store.put(new_key(), [b"x"])


def test_bad_urls_are_refused() -> None:
    for url, message in (
        ("s3://key:secret@bucket/p", "credentials"),
        ("s3://bucket/p?endpont=http://x", "unknown S3 URL parameter"),
        ("s3://bucket/p?part_mb=1", "at least 5 MB"),
        ("s3://bucket/p?create_bucket=maybe", "bad S3 URL parameter"),
    ):
        with pytest.raises(BlobStoreError, match=message):
            open_blob_store(url)


def test_crashed_multipart_uploads_are_aborted(s3_url: str, s3_client: Any) -> None:
    store = open_blob_store(s3_url)
    assert isinstance(store, S3BlobStore)
    store.put(new_key(), [b"x"])  # creates the bucket
    name = f"archive/{new_key()[:8]}/{new_key()}"
    s3_client.create_multipart_upload(Bucket=bucket_of(s3_url), Key=name)
    assert [entry[0] for entry in store.pending_uploads()] == [name]
    # (moto reports a fixed start date for every upload, so the age limit is not tested)
    assert store.remove_partial_writes(older_than=0) == 1
    assert pending(s3_client, s3_url) == []


def test_copy_between_a_folder_and_s3(tmp_path: Path, s3_url: str) -> None:
    folder, bucket = FileSystemBlobStore(tmp_path / "hot"), open_blob_store(s3_url)
    key = new_key()
    info = folder.put(key, pattern(9 * MB, seed=3))
    assert copy_blob(folder, bucket, key) == info
    folder.delete(key)
    assert copy_blob(bucket, folder, key) == info
    assert digest_blob(folder, key) == info


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_replicated_store_with_an_s3_replica(
    tmp_path: Path, s3_url: str, in_memory: bool
) -> None:
    hot, replica = FileSystemBlobStore(tmp_path / "hot"), open_blob_store(s3_url)
    store = ReplicatedBlobStore(hot, replica)
    key = new_key()
    data = [b"a" * 3 * MB, b"b" * 10]
    info = store.put(key, data if in_memory else iter(data))
    store.sync()
    assert digest_blob(hot, key) == digest_blob(replica, key) == info
    hot.delete(key)
    assert store.local_path(key) is None  # readers go through open(), which falls back
    with store.open(key) as handle:
        assert handle.read() == b"".join(data)
    store.delete(key)
    assert not replica.exists(key)


def test_missing_credentials_are_said_plainly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (*CREDENTIALS, "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_blob_store(f"s3://bucket?endpoint=http://127.0.0.1:{free_port()}")
    with pytest.raises(BlobStoreError, match="no S3 credentials"):
        store.put(new_key(), [b"x"])


def test_an_unreachable_replica_fails_the_put(tmp_path: Path, credentials: None) -> None:
    hot = FileSystemBlobStore(tmp_path / "hot")
    replica = open_blob_store(f"s3://bucket?endpoint=http://127.0.0.1:{free_port()}")
    store = ReplicatedBlobStore(hot, replica)
    key = new_key()
    with pytest.raises(BlobStoreError, match="replica"):
        store.put(key, [b"x"])
    assert not hot.exists(key)
