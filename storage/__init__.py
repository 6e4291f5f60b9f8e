"""Bytes only: the BlobStore protocol and its implementations. Knows nothing of DICOM."""

from storage.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreFull,
    BlobStoreUnavailable,
    Dated,
    PartialWrites,
    StagedWrites,
    new_key,
)
from storage.factory import open_blob_store
from storage.filesystem import FileSystemBlobStore
from storage.integrity import RateLimiter, copy_blob, digest_blob
from storage.replicated import ReplicatedBlobStore
from storage.tiered import TieredBlobStore, UnreachableBlobStore

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreFull",
    "BlobStoreUnavailable",
    "Dated",
    "FileSystemBlobStore",
    "PartialWrites",
    "RateLimiter",
    "ReplicatedBlobStore",
    "StagedWrites",
    "TieredBlobStore",
    "UnreachableBlobStore",
    "copy_blob",
    "digest_blob",
    "new_key",
    "open_blob_store",
]
