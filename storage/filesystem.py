"""Blobs as files in sharded folders, written atomically (temp file, fsync, rename, fsync dir)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from storage.blobstore import BlobInfo, BlobNotFound, BlobStoreError, BlobStoreFull, check_key

log = logging.getLogger(__name__)

_TEMP_SUFFIX = ".partial"


class FileSystemBlobStore:
    """``root/YYYYMMDD/<key>`` files; a blob is visible only once complete and synced.

    One folder a day keeps consecutive writes in one folder (no folder creation per blob)
    and stays small enough for ext4/XFS hashed directories at hospital volumes.
    """

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)
        self._unsynced: set[Path] = set()
        self._unsynced_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:8] / key

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        final = self._path(key)
        folder = final.parent
        temp = folder / (key + _TEMP_SUFFIX)
        digest = hashlib.sha256()
        size = 0
        try:
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                if self.fsync:
                    _fsync_dir(folder.parent)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    digest.update(view)
                    size += len(view)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            if final.exists():
                raise BlobStoreError(f"blob {key} already exists")
            os.rename(temp, final)
            if self.fsync:
                with self._unsynced_lock:
                    self._unsynced.add(folder)
        except OSError as exc:
            _discard(temp)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise BlobStoreFull(f"no space left in {self.root}") from exc
            raise BlobStoreError(f"cannot write blob {key}: {exc.strerror}") from exc
        except BaseException:
            _discard(temp)
            raise
        return BlobInfo(size=size, sha256=digest.hexdigest())

    def sync(self) -> None:
        """fsync the folders that received blobs since the last sync (usually one: today's)."""
        with self._unsynced_lock:
            folders, self._unsynced = self._unsynced, set()
        try:
            for folder in folders:
                _fsync_dir(folder)
        except OSError as exc:
            with self._unsynced_lock:
                self._unsynced |= folders
            raise BlobStoreError(f"cannot sync {self.root}: {exc.strerror}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise BlobStoreError(f"cannot read blob {key}: {exc.strerror}") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        _discard(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self) -> Iterator[str]:
        for path in self.root.glob("[0-9]" * 8 + "/*"):
            if not path.name.endswith(_TEMP_SUFFIX):
                yield path.name

    def remove_partial_writes(self) -> int:
        """Delete temp files left by a crash mid-write; returns how many were removed."""
        removed = 0
        for path in self.root.glob("[0-9]" * 8 + f"/*{_TEMP_SUFFIX}"):
            _discard(path)
            removed += 1
        if removed:
            log.warning("removed %d partial blob(s) left by an interrupted write", removed)
        return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - logged, never raised over the real error
        log.error("cannot remove %s: %s", path, exc.strerror)


__all__ = ["BlobNotFound", "FileSystemBlobStore"]
