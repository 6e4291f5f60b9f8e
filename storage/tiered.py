"""Named tiers of blob stores, hottest first: writes go to the hot tier, reads find a key in
whichever tier holds it.

Keys are never reused (a blob moved to another tier gets a new key), so a key lives in one
tier at a time; the caller usually knows which (the index records it) and passes it as a
hint, and the other tiers are tried when the blob is not there. A tier that cannot be
reached is reported as :class:`BlobStoreUnavailable` only when no reachable tier has the
blob, so an unmounted cold tier never hides hot data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
)

log = logging.getLogger(__name__)


class UnreachableBlobStore:
    """Stands for a tier that could not even be opened: every call says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _fail(self) -> BlobStoreUnavailable:
        return BlobStoreUnavailable(self.reason)

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        raise self._fail()

    def sync(self) -> None:
        raise self._fail()

    def open(self, key: str) -> BinaryIO:
        raise self._fail()

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> None:
        raise self._fail()

    def exists(self, key: str) -> bool:
        raise self._fail()

    def keys(self) -> Iterator[str]:
        raise self._fail()


class TieredBlobStore:
    """``tiers``: (name, store) pairs, the hot tier first."""

    def __init__(self, tiers: Sequence[tuple[str, BlobStore]]) -> None:
        if not tiers:
            raise BlobStoreError("a tiered store needs at least one tier")
        self.names = [name for name, _ in tiers]
        if len(set(self.names)) != len(self.names):
            raise BlobStoreError(f"tier names must be unique: {self.names}")
        self._stores = dict(tiers)
        self.hot_name = self.names[0]
        self.hot = self._stores[self.hot_name]

    def tier(self, name: str) -> BlobStore:
        """The store of one tier (BlobStoreError for an unknown name)."""
        try:
            return self._stores[name]
        except KeyError:
            raise BlobStoreError(f"unknown storage tier {name!r}") from None

    def _order(self, hint: str | None) -> list[str]:
        if hint in self._stores:
            return [hint, *(name for name in self.names if name != hint)]
        return list(self.names)

    # --- the BlobStore protocol -------------------------------------------------------------

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        return self.hot.put(key, chunks)

    def sync(self) -> None:
        self.hot.sync()

    def open(self, key: str) -> BinaryIO:
        return self.open_located(key)[0]

    def local_path(self, key: str) -> Path | None:
        """The path of the blob in the first local tier holding it (None if none does)."""
        return self.local_path_located(key)[0]

    def delete(self, key: str) -> None:
        """Delete the blob from the tier holding it (the hot tier is looked at first)."""
        unreachable = []
        for name in self.names:
            store = self._stores[name]
            try:
                if store.exists(key):
                    store.delete(key)
                    return
            except BlobStoreUnavailable as exc:
                unreachable.append(f"{name}: {exc}")
        if unreachable:
            raise BlobStoreUnavailable(f"cannot delete {key}: " + "; ".join(unreachable))

    def exists(self, key: str) -> bool:
        """Whether a tier holds the blob; BlobStoreUnavailable when no reachable tier does
        but one could not be asked (absence cannot be told from an outage)."""
        unreachable = []
        for name, store in self._stores.items():
            try:
                if store.exists(key):
                    return True
            except BlobStoreUnavailable as exc:
                unreachable.append(f"{name}: {exc}")
        if unreachable:
            raise BlobStoreUnavailable(
                f"cannot tell whether {key} exists: " + "; ".join(unreachable)
            )
        return False

    def keys(self) -> Iterator[str]:
        """Every key of every reachable tier (an unreachable one is logged and skipped)."""
        for name, store in self._stores.items():
            try:
                yield from store.keys()
            except BlobStoreUnavailable as exc:
                log.error("tier %s cannot be listed: %s", name, exc)

    # --- tier-aware reads -------------------------------------------------------------------

    def open_located(self, key: str, hint: str | None = None) -> tuple[BinaryIO, str]:
        """Open the blob, looking in ``hint`` first; returns the handle and the tier name."""
        unreachable = []
        for name in self._order(hint):
            try:
                return self._stores[name].open(key), name
            except BlobNotFound:
                continue
            except BlobStoreUnavailable as exc:
                unreachable.append(f"tier {name!r} unreachable: {exc}")
        if unreachable:
            raise BlobStoreUnavailable(f"blob {key}: " + "; ".join(unreachable))
        raise BlobNotFound(key)

    def local_path_located(self, key: str, hint: str | None = None) -> tuple[Path | None, str]:
        """The blob's file and its tier when a local tier holds it, else (None, '')."""
        for name in self._order(hint):
            path = self._stores[name].local_path(key)
            if path is not None and path.is_file():
                return path, name
        return None, ""

    def remove_partial_writes(self) -> int:
        """Temp files left by a crash, in every tier that keeps files."""
        removed = 0
        for name, store in self._stores.items():
            remover = getattr(store, "remove_partial_writes", None)
            if remover is not None:
                try:
                    removed += int(remover())
                except (BlobStoreError, OSError) as exc:
                    log.error("tier %s: cannot look for partial writes: %s", name, exc)
        return removed
