"""The tiering service of the main server process: a niced background thread that
evaluates the policies now and then, prefetches a patient's priors when a new study
arrives, and carries out requested moves one study at a time (recalls first), resting
while modalities store."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pacs.core.tiering.ledger import HOT, PendingMove, TierLedger
from pacs.core.tiering.mover import MoveReport, StudyMover
from pacs.core.tiering.policy import PlannedMove, TierPolicy, plan_moves
from pacs.core.tiering.status import hot_fill
from storage import TieredBlobStore

log = logging.getLogger(__name__)

LEASE_SECONDS = 3600.0  # a claimed move is retried after this long if its mover died


@dataclass(frozen=True)
class TieringConfig:
    """The policies and the service's pacing."""

    policies: tuple[TierPolicy, ...]
    prefetch_priors: int = 0
    hot_capacity_bytes: int = 0
    policy_interval: float = 300.0
    poll_interval: float = 2.0
    yield_to_ingest: float = 4.0
    nice: int = 10
    ingest_window: float = 1.0  # ingest counts as active this long after a store
    pace_quantum: float = 0.05  # the mover works this long between rests while ingest runs


def run_move(
    ledger: TierLedger, mover: StudyMover, move: PendingMove, mover_name: str = "server"
) -> MoveReport:
    """Claim one requested move, carry it out, and record how it ended."""
    ledger.claim(move.study_uid, mover_name, time.time() + LEASE_SECONDS)
    started = time.monotonic()
    try:
        report = mover.move_study(move.study_uid, move.target)
    except Exception as exc:
        report = MoveReport(move.study_uid, move.target, errors=[str(exc)])
    if report.complete:
        ledger.finish(move.study_uid, move.target)
        log.info(
            "%s: study %s to tier %s: %d instances, %.1f MB in %.1f s",
            move.reason,
            move.study_uid,
            move.target,
            report.moved,
            report.bytes_read / 1e6,
            time.monotonic() - started,
        )
    else:
        retry = time.time() + min(3600.0, 30.0 * 2 ** min(move.attempts, 7))
        ledger.fail(move.study_uid, "; ".join(report.errors)[:500], retry)
        log.error(
            "%s: study %s to tier %s incomplete (%d moved), retried later: %s",
            move.reason,
            move.study_uid,
            move.target,
            report.moved,
            "; ".join(report.errors[:3]),
        )
    return report


class TieringService:
    """Policies, prefetch and moves, in one daemon thread."""

    def __init__(
        self,
        ledger: TierLedger,
        blobs: TieredBlobStore,
        mover: StudyMover,
        config: TieringConfig,
        *,
        last_change_time: Callable[[], float],
    ) -> None:
        self.ledger = ledger
        self.blobs = blobs
        self.mover = mover
        self.config = config
        self.last_change_time = last_change_time
        self._stop = mover.stop
        self._thread: threading.Thread | None = None
        self._seq = ledger.last_change_seq() if config.prefetch_priors > 0 else 0
        self._next_policy = 0.0
        self._pace_lock = threading.Lock()
        self._work_started = time.monotonic()
        self._activity_seen = (0.0, -1.0)  # (last activity time, when it was read)
        mover.between_batches = self._rest_if_ingesting
        mover.between_blobs = self._rest_if_ingesting

    # --- one step each ----------------------------------------------------------------------

    def apply_policies(self, now: float | None = None) -> list[PlannedMove]:
        """Request the moves the policies ask for now."""
        now = time.time() if now is None else now
        fill = hot_fill(self.ledger, self.blobs.tier(HOT), self.config.hot_capacity_bytes)
        planned = plan_moves(
            self.ledger.placements(),
            self.config.policies,
            now=now,
            hot_fill=fill,
            excluded=self.ledger.requested_studies(),
        )
        for move in planned:
            self.ledger.request(move.study_uid, move.target, move.reason)
        if planned:
            log.info("tiering policy: %d studies to move", len(planned))
        return planned

    def prefetch(self) -> int:
        """For each study that arrived since the last look, request the recall of the
        patient's most recent priors that are not on the hot tier."""
        if self.config.prefetch_priors <= 0:
            return 0
        studies, self._seq = self.ledger.new_studies_since(self._seq)
        requested = 0
        for study_uid in studies:
            for prior in self.ledger.priors(study_uid, self.config.prefetch_priors):
                if self.ledger.instances_to_move(prior, HOT):
                    self.ledger.request(prior, HOT, "prefetch", touch=True)
                    log.info("prefetch: prior %s of new study %s", prior, study_uid)
                    requested += 1
        return requested

    def run_pending(self, limit: int = 1) -> list[MoveReport]:
        """Carry out up to ``limit`` requested moves, recalls first."""
        reports = []
        for move in self.ledger.pending(limit):
            if self._stop.is_set():
                break
            self._rest_if_ingesting()
            reports.append(run_move(self.ledger, self.mover, move))
        return reports

    def step(self) -> int:
        """Prefetch, the policies when due, then one move; returns how many moves ran."""
        self.prefetch()
        if time.monotonic() >= self._next_policy:
            self.apply_policies()
            self._next_policy = time.monotonic() + self.config.policy_interval
        return len(self.run_pending())

    # --- pacing -----------------------------------------------------------------------------

    def _ingest_active(self) -> bool:
        """Whether something was stored in the last ``ingest_window`` seconds (the archive
        is asked at most every 50 ms)."""
        now = time.monotonic()
        last, read_at = self._activity_seen
        if now - read_at > 0.05:
            last = self.last_change_time()
            self._activity_seen = (last, now)
        return last > time.time() - self.config.ingest_window

    def _rest_if_ingesting(self) -> None:
        """Before each blob, batch and study (from any copy thread): while modalities
        store, once the mover has worked ``pace_quantum`` seconds, every copy thread rests
        ``yield_to_ingest`` times as long."""
        if self.config.yield_to_ingest <= 0:
            return
        with self._pace_lock:
            worked = time.monotonic() - self._work_started
            if worked < self.config.pace_quantum:
                return
            if self._ingest_active():
                # (capped: an idle spell before the first blob is no work to pay back)
                self._stop.wait(self.config.yield_to_ingest * min(worked, 0.5))
            self._work_started = time.monotonic()

    # --- the thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.config.nice)
        try:
            self.ledger.release_claims("server")
            deleted = self.mover.recover()
            if deleted:
                log.warning("tiering: removed %d blob(s) left by an interrupted move", deleted)
        except Exception:
            log.exception("tiering: recovery of interrupted moves failed; retried later")
        while not self._stop.is_set():
            try:
                if not self.step():
                    self._stop.wait(self.config.poll_interval)
            except Exception:
                log.exception("tiering step failed; retrying in a minute")
                self._stop.wait(60.0)

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="tiering", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the batch being copied (its leftovers are cleaned first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def policies_summary(policies: Sequence[TierPolicy]) -> str:
    """One line per tier's rules, for the start-up log."""
    parts = []
    for p in policies:
        rules = []
        if p.after_days_without_access > 0:
            rules.append(f"after {p.after_days_without_access:g} days without access")
        if p.hot_fill_high > 0:
            rules.append(f"hot above {p.hot_fill_high:g}% (down to {p.hot_fill_low:g}%)")
        parts.append(f"{p.name}: {', '.join(rules) or 'on request only'}")
    return "; ".join(parts)
