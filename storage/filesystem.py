"""Blobs as files in sharded folders, written atomically (temp file, fsync, rename, fsync dir)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    BlobStoreFull,
    BlobStoreUnavailable,
    check_key,
)

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
        with self._temp_file(key) as (final, temp, fd):
            info = _write_all(fd, chunks)
            if self.fsync:
                os.fdatasync(fd)
            if final.exists():
                raise BlobStoreError(f"blob {key} already exists")
            os.rename(temp, final)
            if self.fsync:
                with self._unsynced_lock:
                    self._unsynced.add(final.parent)
        return info

    @contextlib.contextmanager
    def _temp_file(self, key: str) -> Iterator[tuple[Path, Path, int]]:
        """``key``'s final path, its new temp file and that file's descriptor (closed on exit);
        on any error the temp file is removed and an OSError becomes a BlobStoreError."""
        temp: Path | None = None
        try:
            final, temp = self._staged(key)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                yield final, temp, fd
            finally:
                os.close(fd)
        except OSError as exc:
            if temp is not None:
                _discard(temp)
            raise _write_error(exc, key, self.root) from exc
        except BaseException:
            if temp is not None:
                _discard(temp)
            raise

    # --- staged writes (a batch of blobs made durable together) ----------------------------

    def _staged(self, key: str) -> tuple[Path, Path]:
        """The final path of a key and its temp file, creating the day folder if needed."""
        final = self._path(key)
        folder = final.parent
        if not folder.is_dir():
            self._check_reachable()  # never recreate a vanished mount point's folder
            folder.mkdir(exist_ok=True)
            if self.fsync:
                _fsync_dir(folder.parent)
        return final, folder / (key + _TEMP_SUFFIX)

    def stage(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        """Write ``key``'s temp file without waiting for the device (see :meth:`publish`)."""
        with self._temp_file(key) as (_, _, fd):
            info = _write_all(fd, chunks)
            _start_writeback(fd)
        return info

    def stage_copy(self, key: str, source: Path) -> int:
        """Stage a copy of a local file with ``copy_file_range`` (the bytes never enter
        this process; plain reads and writes where the kernel cannot). Returns the size."""
        with self._temp_file(key) as (_, _, fd), open(source, "rb") as src:
            size = _copy_fd(src.fileno(), fd)
            _start_writeback(fd)
        return size

    def publish(self, keys: Sequence[str], *, drop_cache: bool = False) -> None:
        """fdatasync every staged file (after the first, the others' data is usually on the
        device already: one journal commit for the batch), rename each to its key, then
        fsync their folders once."""
        try:
            temps = [
                (final, final.parent / (final.name + _TEMP_SUFFIX))
                for final in map(self._path, keys)
            ]
            for _, temp in temps:
                if self.fsync or drop_cache:
                    fd = os.open(temp, os.O_RDONLY)
                    try:
                        if self.fsync:
                            os.fdatasync(fd)
                        if drop_cache and hasattr(os, "posix_fadvise"):
                            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)
            folders = set()
            for final, temp in temps:
                if final.exists():
                    raise BlobStoreError(f"blob {final.name} already exists")
                os.rename(temp, final)
                folders.add(final.parent)
            if self.fsync:
                for folder in folders:
                    _fsync_dir(folder)
        except OSError as exc:
            raise BlobStoreError(f"cannot publish blobs in {self.root}: {exc.strerror}") from exc

    def discard_staged(self, keys: Sequence[str]) -> None:
        for key in keys:
            final = self._path(key)
            _discard(final.parent / (key + _TEMP_SUFFIX))

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
            self._check_reachable()
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise BlobStoreError(f"cannot read blob {key}: {exc.strerror}") from exc

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        """Remove the blob (BlobStoreUnavailable when the folder is gone: a missing blob
        there is not known to be deleted)."""
        self._check_reachable()
        _discard(self._path(key))

    def exists(self, key: str) -> bool:
        """Whether the blob is here (BlobStoreUnavailable when the folder is gone)."""
        if self._path(key).is_file():
            return True
        self._check_reachable()
        return False

    def modified_time(self, key: str) -> float | None:
        """The file's modification time; None when it is missing."""
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def keys(self) -> Iterator[str]:
        self._check_reachable()
        for path in self.root.glob("[0-9]" * 8 + "/*"):
            if not path.name.endswith(_TEMP_SUFFIX):
                yield path.name

    def _check_reachable(self) -> None:
        """Raise BlobStoreUnavailable when the root folder is gone (an unmounted NAS)."""
        if not self.root.is_dir():
            raise BlobStoreUnavailable(f"{self.root} is not reachable (missing or unmounted)")

    def remove_partial_writes(self) -> int:
        """Delete temp files left by a crash mid-write; returns how many were removed."""
        removed = 0
        for path in self.root.glob("[0-9]" * 8 + f"/*{_TEMP_SUFFIX}"):
            _discard(path)
            removed += 1
        if removed:
            log.warning("removed %d partial blob(s) left by an interrupted write", removed)
        return removed


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2) (absent from the os module), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing the file's dirty pages now, without waiting: a
    staged batch streams to the device while it is written, and its flush finds little
    left to do."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _copy_fd(source: int, target: int) -> int:
    """Copy a whole file between descriptors; returns the bytes copied."""
    copied = 0
    try:
        while count := os.copy_file_range(source, target, 1 << 30):
            copied += count
        return copied
    except OSError as exc:  # EXDEV (old kernels), ENOSYS, EOPNOTSUPP...: copy by hand
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    os.lseek(source, copied, os.SEEK_SET)
    while data := os.read(source, 1 << 20):
        view = memoryview(data)
        while view:
            written = os.write(target, view)
            view = view[written:]
            copied += written
    return copied


def _write_all(fd: int, chunks: Iterable[bytes]) -> BlobInfo:
    """Write every chunk to ``fd``, hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        digest.update(view)
        size += len(view)
        while view:
            view = view[os.write(fd, view) :]
    return BlobInfo(size=size, sha256=digest.hexdigest())


def _write_error(exc: OSError, key: str, root: Path) -> BlobStoreError:
    """The BlobStoreError to raise for a failed write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BlobStoreFull(f"no space left in {root}")
    return BlobStoreError(f"cannot write blob {key}: {exc.strerror}")


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
