"""A real archive over two folder tiers (hot, and "cold" as on a NAS), for the tier tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pacs.core.archive import Archive
from pacs.core.tiering import HOT, StudyMover, TierLedger, TierReads, Transform
from storage import FileSystemBlobStore, TieredBlobStore


@dataclass
class Site:
    archive: Archive
    blobs: TieredBlobStore
    ledger: TierLedger
    mover: StudyMover
    hot_dir: Path
    cold_dir: Path


@contextlib.contextmanager
def open_site(
    index_url: str,
    tmp_path: Path,
    transforms: Mapping[str, Transform] | None = None,
    **archive_options: Any,
) -> Iterator[Site]:
    """The archive on ``index_url`` with tiers ``tmp_path/hot`` and ``tmp_path/nas/cold``,
    tier-aware reads and a mover (with ``transforms``); closed on exit."""
    hot_dir, cold_dir = tmp_path / "hot", tmp_path / "nas" / "cold"
    blobs = TieredBlobStore(
        [(HOT, FileSystemBlobStore(hot_dir)), ("cold", FileSystemBlobStore(cold_dir))]
    )
    archive = Archive.open(index_url, blobs, **archive_options)
    ledger = TierLedger(archive.index.database)
    archive.tiers = TierReads(blobs, ledger)
    mover = StudyMover(ledger, blobs, transforms=dict(transforms or {}))
    try:
        yield Site(archive, blobs, ledger, mover, hot_dir, cold_dir)
    finally:
        archive.close()
