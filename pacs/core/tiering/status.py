"""Per-tier figures: objects, bytes (stored, and as received: the space a compressed tier
saves), free space where a tier is a local folder (None, 'unknown', for an object store),
and the archive's growth per day (from the instances' arrival times)."""

from __future__ import annotations

import shutil
import time
from typing import Any

from pacs.core.tiering.ledger import HOT, TierLedger, TierUsage
from pacs.core.tiering.policy import HotFill
from storage import BlobStore, TieredBlobStore

DAY = 86400.0


def disk_space(store: BlobStore) -> tuple[int, int] | None:
    """(total, free) bytes of the filesystem holding a local store; None when not local or
    not reachable."""
    root = getattr(store, "root", None)
    if root is None:
        primary = getattr(store, "primary", None)  # a replicated hot store: its hot folder
        root = getattr(primary, "root", None)
    if root is None:
        return None
    try:
        usage = shutil.disk_usage(root)
    except OSError:
        return None
    return usage.total, usage.free


def hot_fill(ledger: TierLedger, hot: BlobStore, capacity_bytes: int) -> HotFill | None:
    """How full the hot tier is: its indexed bytes against ``capacity_bytes`` when set, else
    its filesystem's use against the filesystem's size."""
    if capacity_bytes > 0:
        return HotFill(ledger.tier_usage().get(HOT, (0, 0))[1], capacity_bytes)
    space = disk_space(hot)
    if space is None:
        return None
    total, free = space
    return HotFill(total - free, total)


def storage_status(
    ledger: TierLedger, blobs: BlobStore, *, hot_capacity_bytes: int = 0, now: float | None = None
) -> dict[str, Any]:
    """JSON-ready figures for ``/storage``, ``/statistics`` and ``pacs storage status``."""
    now = time.time() if now is None else now
    usage = ledger.tier_usage_detail()
    names = blobs.names if isinstance(blobs, TieredBlobStore) else [HOT]
    tiers = []
    for name in names:
        store = blobs.tier(name) if isinstance(blobs, TieredBlobStore) else blobs
        found = usage.get(name, TierUsage(0, 0, 0))
        entry: dict[str, Any] = {
            "name": name,
            "objects": found.objects,
            "bytes": found.bytes,
            # the same files as received, and what compression saves on this tier
            "original_bytes": found.original_bytes,
            "saved_bytes": found.original_bytes - found.bytes,
        }
        space = disk_space(store)
        if space is not None:
            entry["disk_total_bytes"], entry["disk_free_bytes"] = space
        else:  # an object store (or a tier not reachable): bytes are the index's figures
            entry["disk_total_bytes"] = entry["disk_free_bytes"] = None
        if name == HOT and hot_capacity_bytes > 0:
            entry["capacity_bytes"] = hot_capacity_bytes
        tiers.append(entry)
    growth = {}
    for days in (7, 30):
        objects, size = ledger.received_since(now - days * DAY)
        growth[f"last_{days}_days"] = {
            "objects_per_day": round(objects / days, 1),
            "bytes_per_day": size // days,
        }
    fill = hot_fill(
        ledger, blobs.tier(HOT) if isinstance(blobs, TieredBlobStore) else blobs, hot_capacity_bytes
    )
    result: dict[str, Any] = {"tiers": tiers, "growth": growth, "moves": ledger.moves()}
    if fill is not None:
        result["hot_fill_percent"] = round(fill.percent, 2)
        per_day = growth["last_30_days"]["bytes_per_day"]
        if per_day > 0:
            result["hot_days_left"] = round((fill.capacity - fill.used) / per_day, 1)
    return result
