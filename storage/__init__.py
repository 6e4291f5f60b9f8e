"""Bytes only: the BlobStore protocol and its implementations. Knows nothing of DICOM."""

from storage.blobstore import BlobNotFound, BlobStore, BlobStoreError, BlobStoreFull, new_key
from storage.filesystem import FileSystemBlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreFull",
    "FileSystemBlobStore",
    "new_key",
]
