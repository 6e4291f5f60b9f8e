"""Repair from a replica: a missing or corrupt hot copy is restored from the replica, but
only after the replica's own copy is checked against the index's size and SHA-256."""

from __future__ import annotations

import logging

from pacs.core.integrity import Problem
from storage import BlobNotFound, BlobStore, BlobStoreError, copy_blob, digest_blob

log = logging.getLogger(__name__)


class ReplicaRepairer:
    """Restores hot copies from the replica (usable as the scrub's repair hook)."""

    def __init__(self, hot: BlobStore, replica: BlobStore) -> None:
        self.hot = hot
        self.replica = replica

    def __call__(self, problem: Problem) -> bool:
        """True when the hot copy is sound again."""
        key = problem.blob_key
        try:
            found = digest_blob(self.replica, key)
        except BlobNotFound:
            log.error("repair of %s: no replica copy", key)
            return False
        except (BlobStoreError, OSError) as exc:
            log.error("repair of %s: replica unreadable: %s", key, exc)
            return False
        if (found.size, found.sha256) != (problem.expected_size, problem.expected_sha256):
            log.error(
                "repair of %s: the replica copy is corrupt too (sha256 %s)", key, found.sha256
            )
            return False
        try:
            self.hot.delete(key)  # readers meanwhile fall back to the replica
            written = copy_blob(self.replica, self.hot, key)
            self.hot.sync()
        except (BlobStoreError, OSError) as exc:
            log.error("repair of %s: cannot write the hot copy: %s", key, exc)
            return False
        if (written.size, written.sha256) != (problem.expected_size, problem.expected_sha256):
            log.error("repair of %s: the copy read back differs; left for the next attempt", key)
            self.hot.delete(key)
            return False
        log.warning("repaired %s (%s %s) from the replica", key, problem.kind, problem.sop_uid)
        return True
