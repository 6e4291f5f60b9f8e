"""Storage tiers: where each study's blobs are, the policies that move them, the mover."""

from pacs.core.tiering.ledger import HOT, TierLedger
from pacs.core.tiering.mover import MoveReport, StudyMover, Transform, TransformedBlob
from pacs.core.tiering.policy import HotFill, PlannedMove, TierPolicy, plan_moves
from pacs.core.tiering.reads import TierReads

__all__ = [
    "HOT",
    "HotFill",
    "MoveReport",
    "PlannedMove",
    "StudyMover",
    "TierLedger",
    "TierPolicy",
    "TierReads",
    "Transform",
    "TransformedBlob",
    "plan_moves",
]
