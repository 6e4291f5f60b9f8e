"""Bytes only: the BlobStore protocol and its implementations. Knows nothing of DICOM."""

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreFull,
    new_key,
)
from storage.filesystem import FileSystemBlobStore
from storage.integrity import RateLimiter, copy_blob, digest_blob
from storage.replicated import ReplicatedBlobStore

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreFull",
    "FileSystemBlobStore",
    "RateLimiter",
    "ReplicatedBlobStore",
    "copy_blob",
    "digest_blob",
    "new_key",
]
