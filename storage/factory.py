"""Blob stores from their configured location: a folder path, ``file://`` or ``s3://`` URL."""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from storage.blobstore import BlobStore, BlobStoreError
from storage.filesystem import FileSystemBlobStore


def open_blob_store(location: str | Path, *, fsync: bool = True) -> BlobStore:
    """The blob store at ``location``.

    - a plain path or ``file:///path``: a :class:`FileSystemBlobStore` (local disk, NAS mount);
    - ``s3://bucket/prefix?endpoint=http://host:port&region=...``: an S3-compatible object
      store (see :mod:`storage.s3` for the parameters and credentials).
    """
    text = str(location)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("", "file"):
        path = urlsplit(text).path if scheme == "file" else text
        return FileSystemBlobStore(path, fsync=fsync)
    if scheme == "s3":
        s3 = importlib.import_module("storage.s3")  # boto3 is imported only when S3 is used
        store: BlobStore = s3.S3BlobStore.from_url(text)
        return store
    raise BlobStoreError(f"unsupported blob store location {text!r} (a path, file:// or s3://)")
