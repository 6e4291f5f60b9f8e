"""Which studies should move to a colder tier: by time without access, and by the hot tier's
fill level (least recently read first, from the high watermark down to the low one)."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from pacs.core.tiering.ledger import HOT, StudyPlacement

DAY = 86400.0


@dataclass(frozen=True)
class TierPolicy:
    """When studies move into the tier ``name`` (tiers are listed hottest first)."""

    name: str
    after_days_without_access: float = 0.0  # 0 = never by age
    hot_fill_high: float = 0.0  # percent of the hot tier's capacity; 0 = no fill rule
    hot_fill_low: float = 0.0


@dataclass(frozen=True)
class HotFill:
    """The hot tier's use and capacity in bytes."""

    used: int
    capacity: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity > 0 else 0.0


@dataclass(frozen=True)
class PlannedMove:
    study_uid: str
    target: str
    reason: str


def plan_moves(
    placements: Sequence[StudyPlacement],
    policies: Sequence[TierPolicy],
    *,
    now: float,
    hot_fill: HotFill | None = None,
    excluded: Set[str] = frozenset(),
) -> list[PlannedMove]:
    """The moves the policies ask for, by age first, then by fill level."""
    order = {HOT: 0, **{p.name: n + 1 for n, p in enumerate(policies)}}
    planned: dict[str, PlannedMove] = {}
    for placement in placements:
        if placement.study_uid in excluded:
            continue
        target = _target_by_age(placement, policies, now)
        if target is None:
            continue
        rank = order[target]
        if any(order.get(tier, rank) < rank for tier in placement.bytes_by_tier):
            planned[placement.study_uid] = PlannedMove(placement.study_uid, target, "age")
    fill_rule = next((p for p in policies if p.hot_fill_high > 0), None)
    if (
        fill_rule is not None
        and hot_fill is not None
        and hot_fill.percent >= fill_rule.hot_fill_high
    ):
        to_free = hot_fill.used - hot_fill.capacity * fill_rule.hot_fill_low / 100.0
        hot_of = {p.study_uid: p.bytes_by_tier.get(HOT, 0) for p in placements}
        for move in planned.values():  # what the age rule already takes off the hot tier
            to_free -= hot_of[move.study_uid]
        for placement in placements:  # least recently read first
            if to_free <= 0:
                break
            hot_bytes = placement.bytes_by_tier.get(HOT, 0)
            if placement.study_uid in excluded or placement.study_uid in planned or not hot_bytes:
                continue
            planned[placement.study_uid] = PlannedMove(placement.study_uid, fill_rule.name, "fill")
            to_free -= hot_bytes
    return list(planned.values())


def _target_by_age(
    placement: StudyPlacement, policies: Sequence[TierPolicy], now: float
) -> str | None:
    """The coldest tier whose age rule the study meets."""
    idle_days = (now - placement.last_access) / DAY
    target = None
    for policy in policies:
        if 0 < policy.after_days_without_access <= idle_days:
            target = policy.name
    return target
