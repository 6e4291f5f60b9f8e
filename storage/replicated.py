"""A hot store mirrored synchronously to a replica (a second folder, e.g. a NAS mount).

``put`` returns only once the blob is durable in both stores with the same SHA-256, so
every acknowledged instance has two copies. When the content is already in memory (a list
of chunks, as ingest passes it) both copies are written at once, the replica's in a small
thread pool, so the two fdatasyncs overlap; otherwise the replica copy is streamed back from
the hot copy (just written, so read from the page cache) and nothing is buffered. A replica that cannot be written fails the put (the hot copy is removed): the
caller refuses the instance rather than acknowledge a single copy. Reads use the hot copy
and fall back to the replica when it is missing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    Dated,
    PartialWrites,
)
from storage.integrity import copy_blob

log = logging.getLogger(__name__)


class ReplicatedBlobStore:
    """``primary`` (hot) and ``replica``, written together, read from the hot copy first."""

    def __init__(self, primary: BlobStore, replica: BlobStore, *, writers: int = 8) -> None:
        self.primary = primary
        self.replica = replica
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="replica")

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        if isinstance(chunks, list | tuple):
            return self._put_both(key, chunks)
        info = self.primary.put(key, chunks)
        try:
            copied = copy_blob(self.primary, self.replica, key)
            if copied != info:
                self.replica.delete(key)
                raise BlobStoreError(f"replica copy of {key} differs from the hot copy")
        except BaseException as exc:
            self.primary.delete(key)
            if isinstance(exc, BlobStoreError):
                raise BlobStoreError(f"replica: {exc}") from exc
            raise
        return info

    def _put_both(self, key: str, chunks: Sequence[bytes]) -> BlobInfo:
        """Write the in-memory content to both stores concurrently."""
        replica_put = self._pool.submit(self.replica.put, key, chunks)
        try:
            info = self.primary.put(key, chunks)
        except BaseException:
            with contextlib.suppress(Exception):
                replica_put.result()
                self.replica.delete(key)  # only when the replica copy was written
            raise
        try:
            copied = replica_put.result()
        except BlobStoreError as exc:
            self.primary.delete(key)
            raise BlobStoreError(f"replica: {exc}") from exc
        except BaseException:
            self.primary.delete(key)
            raise
        if copied != info:  # pragma: no cover - the same bytes hash the same
            self.delete(key)
            raise BlobStoreError(f"replica copy of {key} differs from the hot copy")
        return info

    def sync(self) -> None:
        self.primary.sync()
        self.replica.sync()

    def open(self, key: str) -> BinaryIO:
        try:
            return self.primary.open(key)
        except BlobNotFound:
            handle = self.replica.open(key)
            log.warning("blob %s is missing from the hot store; read from the replica", key)
            return handle

    def local_path(self, key: str) -> Path | None:
        """The hot copy's path, or the replica's when only the replica holds the blob."""
        path = self.primary.local_path(key)
        if path is not None and not path.is_file():
            fallback = self.replica.local_path(key)
            if fallback is not None and fallback.is_file():
                return fallback
            if fallback is None:  # an object store: callers read through open()
                return None
        return path

    def delete(self, key: str) -> None:
        self.primary.delete(key)
        self.replica.delete(key)

    def exists(self, key: str) -> bool:
        return self.primary.exists(key)

    def keys(self) -> Iterator[str]:
        return self.primary.keys()

    def remove_partial_writes(self) -> int:
        """Temp files (or multipart uploads) left by a crash, in both stores."""
        removed = 0
        for store in (self.primary, self.replica):
            if isinstance(store, PartialWrites):
                try:
                    removed += store.remove_partial_writes()
                except BlobStoreError as exc:  # an unreachable replica must not stop a start
                    log.error("cannot clean up partial writes in %s: %s", store, exc)
        return removed

    def modified_time(self, key: str) -> float | None:
        """When the hot copy was written (None when the hot store cannot tell)."""
        return self.primary.modified_time(key) if isinstance(self.primary, Dated) else None
