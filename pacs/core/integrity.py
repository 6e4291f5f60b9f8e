"""Integrity of stored objects: every indexed blob exists with its recorded size and SHA-256.

Read-only: safe while the server runs. Blobs are read in chunks, paced by a rate limiter.
A problem is confirmed against the index before it is reported (an instance replaced while
we read it moved to a new blob: not a problem).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pacs.core.index.blob_rows import (
    IndexedBlob,
    indexed_blobs,
    indexed_keys,
    still_indexed,
    still_trashed,
    trashed_blobs,
)
from pacs.core.index.db import Database
from pacs.core.tiering.ledger import TierLedger
from storage import BlobNotFound, BlobStore, BlobStoreError, Dated, RateLimiter, digest_blob

log = logging.getLogger(__name__)

ProblemKind = Literal["missing", "corrupt"]
_BATCH = 500


@dataclass(frozen=True)
class Problem:
    """A missing or corrupt object: expected (from the index) versus found."""

    kind: ProblemKind
    sop_uid: str
    study_uid: str
    blob_key: str
    expected_size: int
    expected_sha256: str
    found_size: int | None = None
    found_sha256: str | None = None
    detail: str = ""

    def describe(self) -> str:
        """One line for people."""
        text = (
            f"{self.kind.upper():8} sop={self.sop_uid} study={self.study_uid} "
            f"blob={self.blob_key} expected size={self.expected_size} "
            f"sha256={self.expected_sha256}"
        )
        if self.kind == "corrupt":
            text += f" found size={self.found_size} sha256={self.found_sha256}"
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Orphan:
    """A blob no index row refers to; ``age`` in seconds (None when the store cannot tell)."""

    blob_key: str
    age: float | None
    removed: bool = False


@dataclass
class VerifyReport:
    """The outcome of one verification run."""

    checked: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    recent_unindexed: int = 0
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def missing(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "missing"]

    @property
    def corrupt(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "corrupt"]

    @property
    def ok(self) -> bool:
        """Nothing missing or corrupt is left (repaired objects count as fixed)."""
        repaired = set(self.repaired)
        return all(p.blob_key in repaired for p in self.problems)

    def summary(self) -> str:
        """The closing line."""
        mb = self.bytes_read / 1e6
        text = (
            f"checked {self.checked} objects ({mb:.1f} MB) in {self.seconds:.1f} s: "
            f"{len(self.missing)} missing, {len(self.corrupt)} corrupt, "
            f"{len(self.orphans)} orphan blob(s)"
        )
        removed = sum(1 for o in self.orphans if o.removed)
        if removed:
            text += f" ({removed} removed)"
        if self.recent_unindexed:
            text += f", {self.recent_unindexed} recent unindexed blob(s) skipped (in flight?)"
        if self.repaired or self.unrepaired:
            text += f"; repaired {len(self.repaired)}, not repaired {len(self.unrepaired)}"
        return text + (" - OK" if self.ok else " - FAILED")

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON-ready values."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "missing": [asdict(p) for p in self.missing],
            "corrupt": [asdict(p) for p in self.corrupt],
            "orphans": [asdict(o) for o in self.orphans],
            "recent_unindexed": self.recent_unindexed,
            "repaired": self.repaired,
            "unrepaired": self.unrepaired,
        }


def check_blob(
    blobs: BlobStore, entry: IndexedBlob, limiter: RateLimiter | None = None
) -> tuple[Problem | None, int]:
    """Read the blob once: (the problem found or None, bytes read)."""
    try:
        info = digest_blob(blobs, entry.blob_key, limiter)
    except BlobNotFound:
        return _problem("missing", entry), 0
    except (BlobStoreError, OSError) as exc:
        return _problem("missing", entry, detail=f"unreadable: {exc}"), 0
    if info.size != entry.size or info.sha256 != entry.sha256:
        return _problem("corrupt", entry, info.size, info.sha256), info.size
    return None, info.size


def _problem(
    kind: ProblemKind,
    entry: IndexedBlob,
    size: int | None = None,
    sha256: str | None = None,
    detail: str = "",
) -> Problem:
    return Problem(
        kind,
        entry.sop_uid,
        entry.study_uid,
        entry.blob_key,
        entry.size,
        entry.sha256,
        size,
        sha256,
        detail,
    )


def moving_keys(database: Database) -> set[str]:
    """Blob keys of copies between tiers under way (none before index migration 6)."""
    try:
        return TierLedger(database).in_flight_keys()
    except Exception:  # an index without tier_moves: nothing moves
        return set()


def _chunked(keys: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def blob_age(blobs: BlobStore, key: str, now: float) -> float | None:
    """Seconds since the blob was written, where the store can tell (a file's mtime, an
    object's LastModified)."""
    try:
        if isinstance(blobs, Dated):
            written = blobs.modified_time(key)
            return None if written is None else max(0.0, now - written)
        path = blobs.local_path(key)
        return None if path is None else max(0.0, now - path.stat().st_mtime)
    except (OSError, BlobStoreError):
        return None


class Verifier:
    """Checks every indexed object and looks for orphan blobs."""

    def __init__(self, database: Database, blobs: BlobStore) -> None:
        self.database = database
        self.blobs = blobs

    def check_objects(
        self,
        report: VerifyReport,
        *,
        since: float = 0.0,
        limiter: RateLimiter | None = None,
        on_problem: Callable[[Problem], None] | None = None,
    ) -> None:
        """Read every indexed object received at or after ``since``."""
        for batch in indexed_blobs(self.database, since=since):
            for entry in batch:
                problem, read = check_blob(self.blobs, entry, limiter)
                report.checked += 1
                report.bytes_read += read
                if problem is not None and still_indexed(self.database, entry):
                    report.problems.append(problem)
                    if on_problem is not None:
                        on_problem(problem)

    def check_trash(self, report: VerifyReport, *, limiter: RateLimiter | None = None) -> None:
        """Read every blob kept in the trash; a problem says so in its detail (it is not
        handed to repairs: those work on indexed instances)."""
        for batch in trashed_blobs(self.database):
            for entry in batch:
                problem, read = check_blob(self.blobs, entry, limiter)
                report.checked += 1
                report.bytes_read += read
                if problem is not None and still_trashed(self.database, entry):
                    detail = "in the trash" + (f"; {problem.detail}" if problem.detail else "")
                    report.problems.append(replace(problem, detail=detail))

    def find_orphans(
        self,
        report: VerifyReport,
        *,
        since_day: str = "",
        min_age: float = 3600.0,
        remove: bool = False,
    ) -> None:
        """Blobs no index row refers to. The store is listed a chunk at a time and each
        chunk is looked up in the index (by key) after it was listed, so a blob committed
        meanwhile counts as indexed; one younger than ``min_age`` may still be in flight
        (written, not yet committed) and is only counted. ``remove`` deletes orphans older
        than ``min_age`` after checking the index once more."""
        listed = (key for key in self.blobs.keys() if key[:8] >= since_day)  # noqa: SIM118
        candidates: list[Orphan] = []
        for chunk in _chunked(listed, 5000):  # memory bounded by a chunk, not the archive
            # a move between tiers under way holds both copies: neither is an orphan
            known = indexed_keys(self.database, chunk) | moving_keys(self.database)
            now = time.time()
            for key in sorted(set(chunk) - known):
                age = blob_age(self.blobs, key, now)
                if age is not None and age < min_age:
                    report.recent_unindexed += 1
                else:
                    candidates.append(Orphan(key, age))
        if remove and candidates:
            removable = [o.blob_key for o in candidates if o.age is not None]
            referenced = indexed_keys(self.database, removable) | moving_keys(self.database)
            result = []
            for orphan in candidates:
                if orphan.age is not None and orphan.blob_key not in referenced:
                    self.blobs.delete(orphan.blob_key)
                    log.warning("removed orphan blob %s (%.0f s old)", orphan.blob_key, orphan.age)
                    result.append(Orphan(orphan.blob_key, orphan.age, removed=True))
                elif orphan.blob_key not in referenced:
                    result.append(orphan)
            candidates = result
        report.orphans.extend(candidates)

    def run(
        self,
        *,
        since: float = 0.0,
        rate_bytes: float = 0.0,
        orphans: bool = True,
        remove_orphans: bool = False,
        orphan_min_age: float = 3600.0,
        on_problem: Callable[[Problem], None] | None = None,
        trash: bool = True,
    ) -> VerifyReport:
        """A whole verification: objects, the trash's blobs (``trash``, on a full run), then
        orphans."""
        started = time.monotonic()
        report = VerifyReport()
        limiter = RateLimiter(rate_bytes) if rate_bytes > 0 else None
        self.check_objects(report, since=since, limiter=limiter, on_problem=on_problem)
        if trash and since <= 0:
            self.check_trash(report, limiter=limiter)
        if orphans:
            since_day = time.strftime("%Y%m%d", time.gmtime(since)) if since > 0 else ""
            self.find_orphans(
                report, since_day=since_day, min_age=orphan_min_age, remove=remove_orphans
            )
        report.seconds = time.monotonic() - started
        return report
