"""Moving a whole study to another tier without ever losing it.

For each batch of the study's instances:

1. the copies about to be made are recorded (``tier_moves.in_flight``, one commit);
2. each blob is copied to the target tier under a NEW key (blobs are immutable). To a tier
   that stages writes (:class:`storage.StagedWrites`, local folders) the copy is staged,
   not yet visible: a local source is copied in the kernel (``copy_file_range``), other
   sources are read with their SHA-256 checked against the index on the way, and a
   transform's output is written as it is;
3. the batch is made durable together (one flush, then the names), then each copy is read
   back and its SHA-256 compared with the index's (or the transformed bytes'): this one
   check covers the source and the copy. The read-back comes from the page cache unless
   ``verify_from_disk``: it proves the bytes the kernel holds for the copy, which the
   device acknowledged as written; damage on the device afterwards is the scrub's to find;
4. every row is pointed at its copy in one transaction, guarded by the old key (a row
   deleted or replaced meanwhile is left alone);
5. whichever key of each pair no row refers to is deleted: the source once switched, the
   copy otherwise; then the record of the batch is cleared.

``between_blobs`` is called before each blob's copy and read-back (from the copy threads)
and ``between_batches`` between batches: the tiering service rests there while
modalities store.

A crash anywhere leaves each row pointing at a complete, verified blob; the next start
(:meth:`StudyMover.recover`) deletes the leftovers of the batch that was under way.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pacs.core.dicom_header import summarize
from pacs.core.tiering.ledger import InFlight, MoveItem, Switch, TierLedger
from storage import (
    BlobInfo,
    BlobStoreError,
    BlobStoreUnavailable,
    RateLimiter,
    StagedWrites,
    TieredBlobStore,
    digest_blob,
    new_key,
)
from storage.integrity import read_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransformedBlob:
    """What a transform made of a stored file: new Part 10 bytes and their transfer syntax."""

    data: bytes
    transfer_syntax: str


# A tier's transform (e.g. lossless compression): None keeps the bytes as they are.
Transform = Callable[[bytes], TransformedBlob | None]


class MoveError(BlobStoreError):
    """One instance could not be moved (its source is missing or corrupt, a copy differs)."""


@dataclass
class MoveReport:
    """What one study's move did."""

    study_uid: str
    target: str
    moved: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    left_alone: int = 0  # rows deleted or replaced while their copy was made
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


class StudyMover:
    """Moves studies between the tiers of one :class:`TieredBlobStore`."""

    def __init__(
        self,
        ledger: TierLedger,
        blobs: TieredBlobStore,
        *,
        transforms: Mapping[str, Transform] | None = None,
        limiter: RateLimiter | None = None,
        batch_bytes: int = 64 << 20,
        batch_count: int = 128,
        copy_threads: int = 4,
        between_batches: Callable[[], None] | None = None,
        between_blobs: Callable[[], None] | None = None,
        verify_from_disk: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.ledger = ledger
        self.blobs = blobs
        self.transforms = dict(transforms or {})
        self.limiter = limiter
        self.batch_bytes = batch_bytes
        self.batch_count = batch_count
        self.copy_threads = copy_threads
        self.between_batches = between_batches
        self.between_blobs = between_blobs
        self.verify_from_disk = verify_from_disk
        self.stop = stop or threading.Event()

    # --- recovery ---------------------------------------------------------------------------

    def recover(self) -> int:
        """Settle every batch a crash left under way; returns how many blobs were deleted."""
        deleted = 0
        for study_uid, entries in self.ledger.in_flight().items():
            done, count = self._delete_leftovers(study_uid, entries)
            deleted += count
            if done:
                self.ledger.clear_in_flight(study_uid)
        return deleted

    def _delete_leftovers(
        self, study_uid: str, entries: Sequence[InFlight], *, paced: bool = False
    ) -> tuple[bool, int]:
        """Delete each key of ``entries`` no row refers to (``paced``: resting for ingest
        before each, as before each blob). Returns whether all are gone (a tier that cannot
        be reached keeps its leftovers for a later attempt) and how many were deleted."""
        keys = [key for e in entries for key in (e.old_key, e.new_key)]
        referenced = self.ledger.referenced(keys)
        deleted = 0
        for key in keys:
            if key in referenced:
                continue
            if paced:
                self._pace()
            try:
                self.blobs.delete(key)  # from whichever tier holds it
            except BlobStoreUnavailable as exc:
                log.error("move of %s: cannot delete %s yet: %s", study_uid, key, exc)
                return False, deleted
            deleted += 1
        return True, deleted

    # --- moves ------------------------------------------------------------------------------

    def move_study(self, study_uid: str, target: str) -> MoveReport:
        """Move every instance of the study that is not on ``target`` yet.

        Batches overlap by one step: the leftovers of a switched batch are deleted (by one
        thread) while the next batch is copied, so ``in_flight`` records both batches until
        they are gone, and is cleared at the end.
        """
        self.blobs.tier(target)  # an unknown tier fails here
        report = MoveReport(study_uid, target)
        items = self.ledger.instances_to_move(study_uid, target)
        kept: list[InFlight] = []  # leftovers a tier could not delete: they stay recorded
        settling: tuple[list[InFlight], Future[tuple[bool, int]]] | None = None
        with ThreadPoolExecutor(
            max_workers=max(1, self.copy_threads) + 1, thread_name_prefix="tier-copy"
        ) as pool:

            def settled() -> list[InFlight]:
                """Wait for the previous batch's deletions: the entries that remain."""
                if settling is None:
                    return []
                entries, future = settling
                done, _ = future.result()
                return [] if done else entries

            try:
                for number, batch in enumerate(_batches(items, self.batch_bytes, self.batch_count)):
                    if self.stop.is_set():
                        report.errors.append("stopped")
                        break
                    if number and self.between_batches is not None:
                        self.between_batches()
                    entries = [InFlight(i.pk, i.blob_key, i.tier, new_key(), target) for i in batch]
                    previous = settling[0] if settling is not None else []
                    self.ledger.set_in_flight(study_uid, [*kept, *previous, *entries])
                    try:
                        self._move_batch(study_uid, target, batch, entries, report, pool)
                    finally:
                        kept += settled()
                        settling = None
                        settling = (
                            entries,
                            pool.submit(self._delete_leftovers, study_uid, entries, paced=True),
                        )
            finally:
                kept += settled()
                if kept:
                    self.ledger.set_in_flight(study_uid, kept)
                else:
                    self.ledger.clear_in_flight(study_uid)
        return report

    def _move_batch(
        self,
        study_uid: str,
        target: str,
        batch: Sequence[MoveItem],
        entries: Sequence[InFlight],
        report: MoveReport,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Copy, make durable, check and switch one recorded batch (its leftovers are the
        caller's to delete)."""
        store = self.blobs.tier(target)
        step = _SLICE if isinstance(store, StagedWrites) else 1  # puts are durable each
        slices = [(batch[i : i + step], entries[i : i + step]) for i in range(0, len(batch), step)]
        try:
            outcomes = [o for part in pool.map(self._move_slice, slices) for o in part]
            store.sync()
            switches = self._keep(batch, outcomes, report)
            for item, switch in switches:
                report.bytes_read += item.size
                report.bytes_written += switch.size
            if switches:
                switched = self.ledger.switch(study_uid, [switch for _, switch in switches])
                report.moved += len(switched)
                report.left_alone += len(switches) - len(switched)
        except BlobStoreError as exc:  # the batch could not be made durable: none moved
            report.errors.append(f"batch of {len(batch)} instances: {exc}")
        finally:
            if isinstance(store, StagedWrites):
                store.discard_staged([e.new_key for e in entries])

    @staticmethod
    def _keep(
        items: Sequence[MoveItem], outcomes: Iterable[Switch | Exception], report: MoveReport
    ) -> list[tuple[MoveItem, Switch]]:
        """The items whose copy was made and checked; the others' errors go to the report."""
        kept = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Exception):
                report.errors.append(f"{item.sop_uid}: {outcome}")
            else:
                kept.append((item, outcome))
        return kept

    def _move_slice(
        self, part: tuple[Sequence[MoveItem], Sequence[InFlight]]
    ) -> list[Switch | Exception]:
        """In one copy thread: copy a slice of the batch (8 blobs to a staging tier, else
        one), make the staged copies durable together, read each back (the batch's names
        are synced before the switch). Slices run side by side, so one thread's copying
        overlaps another's flush and another's reading."""
        items, entries = part
        outcomes = [self._copy_one(item, entry) for item, entry in zip(items, entries, strict=True)]
        made = [o for o in outcomes if isinstance(o, Switch)]
        store = self.blobs.tier(entries[0].new_tier)
        if made and isinstance(store, StagedWrites):
            self._pace()
            try:
                store.publish([s.new_key for s in made], drop_cache=self.verify_from_disk)
            except BlobStoreError as exc:
                log.error("move: cannot make %d copies durable: %s", len(made), exc)
                return [exc if isinstance(o, Switch) else o for o in outcomes]
        return [self._check_one(o) if isinstance(o, Switch) else o for o in outcomes]

    def _pace(self) -> None:
        if self.between_blobs is not None:
            self.between_blobs()

    def _copy_one(self, item: MoveItem, entry: InFlight) -> Switch | Exception:
        """Copy one blob to the target under its new key; the Switch to make once the copy
        is checked, or the error (the instance stays where it is)."""
        self._pace()
        try:
            return self._copy(item, entry)
        except (BlobStoreError, OSError) as exc:
            log.error("move of %s to %s: %s", item.sop_uid, entry.new_tier, exc)
            return exc

    def _check_one(self, switch: Switch) -> Switch | Exception:
        """Read the durable copy back: the Switch when its size and SHA-256 are the ones
        expected, else the error."""
        self._pace()
        try:
            found = digest_blob(self.blobs.tier(switch.tier), switch.new_key)
        except (BlobStoreError, OSError) as exc:
            log.error("move of %s: cannot read the copy back: %s", switch.old_key, exc)
            return exc
        if (found.size, found.sha256) != (switch.size, switch.sha256):
            error = MoveError(
                f"the copy {switch.new_key} in {switch.tier} reads back differently from "
                f"what was expected (sha256 {switch.sha256}): the source or the copy is "
                f"damaged; {switch.old_key} left where it is"
            )
            log.error("%s", error)
            return error
        return switch

    def _copy(self, item: MoveItem, entry: InFlight) -> Switch:
        target = self.blobs.tier(entry.new_tier)
        transform = self.transforms.get(entry.new_tier)
        staged = isinstance(target, StagedWrites)
        if transform is None and staged:
            path, _ = self.blobs.local_path_located(item.blob_key, item.tier)
            if path is not None:
                # In the kernel: the read-back compared with the index's SHA-256 checks the
                # source and the copy at once.
                assert isinstance(target, StagedWrites)
                if self.limiter is not None:
                    self.limiter.consume(item.size)
                size = target.stage_copy(entry.new_key, path)
                if size != item.size:
                    raise MoveError(
                        f"source blob {item.blob_key} in {item.tier} has {size} bytes, the "
                        f"index says {item.size}; left where it is"
                    )
                return self._switch(item, entry, BlobInfo(item.size, item.sha256))
        header: bytes | None = None
        syntax = item.transfer_syntax
        put = target.stage if isinstance(target, StagedWrites) else target.put
        handle, _ = self.blobs.open_located(item.blob_key, item.tier)
        with handle:
            if transform is None:
                written = put(entry.new_key, read_chunks(handle, self.limiter))
                source = written
            else:
                raw = handle.read()
                if self.limiter is not None:
                    self.limiter.consume(len(raw))
                source = BlobInfo(len(raw), hashlib.sha256(raw).hexdigest())
                data = raw
                if source.sha256 == item.sha256:
                    changed = transform(raw)
                    if changed is not None:
                        data, syntax = changed.data, changed.transfer_syntax
                        header = _header_of(data, item.sop_uid)
                written = put(entry.new_key, [data])
        if (source.size, source.sha256) != (item.size, item.sha256):
            raise MoveError(
                f"source blob {item.blob_key} in {item.tier} does not match the index "
                f"(sha256 {source.sha256}); left where it is"
            )
        return self._switch(item, entry, written, syntax, header)

    @staticmethod
    def _switch(
        item: MoveItem,
        entry: InFlight,
        copy: BlobInfo,
        syntax: str | None = None,
        header: bytes | None = None,
    ) -> Switch:
        return Switch(
            item.pk,
            item.blob_key,
            entry.new_key,
            entry.new_tier,
            copy.size,
            copy.sha256,
            item.transfer_syntax if syntax is None else syntax,
            header,
        )


def _header_of(data: bytes, sop_uid: str) -> bytes:
    """The index header of transformed bytes, refusing a file that is not the same instance."""
    try:
        summary, _ = summarize(data)
    except Exception as exc:
        raise MoveError(f"the transformed {sop_uid} does not parse: {exc}") from exc
    if summary.sop_uid != sop_uid:
        raise MoveError(f"the transform changed the SOP Instance UID of {sop_uid}")
    return summary.header


_SLICE = 8  # blobs a copy thread copies, flushes together, then reads back


def _batches(items: Sequence[MoveItem], max_bytes: int, max_count: int) -> Iterator[list[MoveItem]]:
    batch: list[MoveItem] = []
    size = 0
    for item in items:
        if batch and (size + item.size > max_bytes or len(batch) >= max_count):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch
