"""The BlobStore seam: durable, immutable blobs under opaque keys."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

_KEY_PATTERN = re.compile(r"^[0-9]{8}[0-9a-f]{32}$")


class BlobStoreError(Exception):
    """A blob could not be written or read."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under this key."""


class BlobStoreFull(BlobStoreError):
    """The store has no space left for this blob."""


class BlobStoreUnavailable(BlobStoreError):
    """The store cannot be reached (an unmounted NAS, an object store that does not answer)."""


@dataclass(frozen=True)
class BlobInfo:
    """What was written: the size in bytes and the SHA-256 of the content."""

    size: int
    sha256: str


def new_key() -> str:
    """A fresh key: the UTC day it was made (``YYYYMMDD``) and 128 random bits.

    Never derived from a DICOM UID. The day lets stores group blobs written together (one
    folder a day on disk, so consecutive writes share a folder) and lets tiering and backup
    select by age without reading the index.
    """
    return time.strftime("%Y%m%d", time.gmtime()) + uuid.uuid4().hex


def check_key(key: str) -> str:
    """Refuse any key that is not one we generate (keeps keys from escaping the store)."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise BlobStoreError(f"invalid blob key {key!r}")
    return key


@runtime_checkable
class BlobStore(Protocol):
    """Immutable blobs: written once, atomically and durably; read many times; deleted."""

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        """Store the concatenated chunks under a fresh key.

        The content is on stable storage when this returns; the blob's *name* may only be
        durable after the next :meth:`sync` (so many puts can share one directory sync).
        """
        ...

    def sync(self) -> None:
        """Make every put that returned before this call durable, names included."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Open the blob for reading (the caller closes it)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path of the blob when the store has one, else None."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a complete blob is stored under this key."""
        ...

    def keys(self) -> Iterator[str]:
        """Every stored key (order unspecified)."""
        ...


@runtime_checkable
class Dated(Protocol):
    """A store that knows when each blob was written (orphan checks need a blob's age)."""

    def modified_time(self, key: str) -> float | None:
        """Seconds since the epoch when the blob was written; None when it is missing."""
        ...


@runtime_checkable
class PartialWrites(Protocol):
    """A store that can clean up writes a crash left unfinished."""

    def remove_partial_writes(self) -> int:
        """Remove what interrupted writes left; returns how many were removed."""
        ...


@runtime_checkable
class StagedWrites(Protocol):
    """A store that can write many blobs first and make them durable together (one flush
    per batch instead of one per blob). A staged blob is neither visible nor durable until
    :meth:`publish`; a crash before leaves only partial writes (see :class:`PartialWrites`).
    """

    def stage(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        """Write the concatenated chunks for ``key``, not yet durable nor visible."""
        ...

    def stage_copy(self, key: str, source: Path) -> int:
        """Stage a copy of a local file (in the kernel where it can); returns its size."""
        ...

    def publish(self, keys: Sequence[str], *, drop_cache: bool = False) -> None:
        """Make the staged blobs durable, then visible under their keys, names included.
        ``drop_cache``: evict them from the page cache, so the next read comes from the
        device."""
        ...

    def discard_staged(self, keys: Sequence[str]) -> None:
        """Forget staged blobs that will not be published (missing ones are ignored)."""
        ...
