"""Streaming digests of stored blobs at a bounded rate (never a whole blob in memory)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

from storage.blobstore import BlobInfo, BlobStore

CHUNK = 1 << 20


class RateLimiter:
    """A token bucket in bytes per second (0 = unlimited), shared safely between threads.

    ``consume`` sleeps just long enough that the long-run rate stays at or below the limit;
    at most one second of bytes may pass in a burst.
    """

    def __init__(
        self, bytes_per_second: float, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rate = max(0.0, bytes_per_second)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._allowance = self.rate
        self._last = time.monotonic()

    def consume(self, count: int) -> None:
        """Account for ``count`` bytes, sleeping if the budget is spent."""
        if self.rate <= 0 or count <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._allowance = min(self.rate, self._allowance + (now - self._last) * self.rate)
            self._last = now
            self._allowance -= count
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


def read_chunks(
    handle: BinaryIO, limiter: RateLimiter | None = None, chunk: int = CHUNK
) -> Iterator[bytes]:
    """The handle's content in chunks, paced by the limiter."""
    while True:
        data = handle.read(chunk)
        if not data:
            return
        if limiter is not None:
            limiter.consume(len(data))
        yield data


def digest_blob(store: BlobStore, key: str, limiter: RateLimiter | None = None) -> BlobInfo:
    """Size and SHA-256 of a stored blob, read in chunks (raises BlobNotFound)."""
    digest = hashlib.sha256()
    size = 0
    with store.open(key) as handle:
        for data in read_chunks(handle, limiter):
            digest.update(data)
            size += len(data)
    return BlobInfo(size=size, sha256=digest.hexdigest())


def copy_blob(
    source: BlobStore, target: BlobStore, key: str, limiter: RateLimiter | None = None
) -> BlobInfo:
    """Stream a blob from one store into another under the same key; returns what was
    written (the caller compares it with the digest it expects)."""
    with source.open(key) as handle:
        return target.put(key, read_chunks(handle, limiter))
