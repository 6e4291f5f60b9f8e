"""Streaming digests, copies between stores, and the rate limiter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage import BlobNotFound, FileSystemBlobStore, RateLimiter, copy_blob, digest_blob, new_key


def test_digest_streams_a_blob_larger_than_a_chunk(tmp_path: Path) -> None:
    store = FileSystemBlobStore(tmp_path)
    content = bytes(range(256)) * 10_000  # 2.5 MB: several 1 MiB chunks
    key = new_key()
    store.put(key, [content])
    info = digest_blob(store, key)
    assert info.size == len(content)
    assert info.sha256 == hashlib.sha256(content).hexdigest()
    with pytest.raises(BlobNotFound):
        digest_blob(store, new_key())


def test_copy_between_stores_keeps_key_and_digest(tmp_path: Path) -> None:
    source, target = FileSystemBlobStore(tmp_path / "a"), FileSystemBlobStore(tmp_path / "b")
    key = new_key()
    written = source.put(key, [b"x" * 3_000_000])
    assert copy_blob(source, target, key) == written
    assert digest_blob(target, key) == written


def test_rate_limiter_sleeps_for_the_excess() -> None:
    slept: list[float] = []
    limiter = RateLimiter(1_000_000, sleep=slept.append)
    limiter.consume(1_000_000)  # the first second's budget
    limiter.consume(500_000)
    assert slept and slept[-1] == pytest.approx(0.5, abs=0.05)
    unlimited = RateLimiter(0, sleep=slept.append)
    count = len(slept)
    unlimited.consume(10**9)
    assert len(slept) == count
