"""``pacs storage status | migrate | apply-policy``: storage tiers from the command line.
The composition root hands in the archive and the mover; this module parses and reports."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pacs.core.archive import Archive
from pacs.core.tiering import HOT, StudyMover
from pacs.core.tiering.ledger import PendingMove
from pacs.core.tiering.service import TieringService, run_move

TIER_COMMAND = "storage"


def add_tier_commands(commands: Any) -> None:
    """``pacs storage ...`` on the ``pacs`` parser's sub-parsers."""
    text = "storage tiers: usage and growth, moving studies, the policies on demand"
    storage = commands.add_parser(TIER_COMMAND, help=text, description=text)
    storage.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    sub = storage.add_subparsers(dest="storage_command", required=True)
    status = sub.add_parser("status", help="objects, bytes, free space and growth per tier")
    status.add_argument("--json", action="store_true", help="print the figures as JSON")
    migrate = sub.add_parser(
        "migrate", help="move one study to a tier now (copy, verify, switch, delete)"
    )
    migrate.add_argument("--study", required=True, help="Study Instance UID")
    where = migrate.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", help="target tier name")
    where.add_argument("--recall", action="store_true", help="back to the hot tier")
    policy = sub.add_parser(
        "apply-policy", help="evaluate the tier policies now and request the moves they ask for"
    )
    policy.add_argument(
        "--run", action="store_true", help="carry out the requested moves here and now"
    )


def run_tier_command(
    args: argparse.Namespace,
    archive: Archive,
    mover: StudyMover | None,
    service: TieringService | None,
) -> int:
    """Run one ``pacs storage`` command; 0 on success, 1 when a move failed, 2 on bad usage."""
    if args.storage_command == "status":
        status = archive.storage_status()
        print(json.dumps(status, indent=2) if args.json else format_status(status))
        return 0
    if mover is None or service is None:
        print("no [[storage.tiers]] configured", file=sys.stderr)
        return 2
    if args.storage_command == "migrate":
        target = HOT if args.recall else args.to
        if target not in mover.blobs.names:
            print(
                f"unknown tier {target!r} (tiers: {', '.join(mover.blobs.names)})", file=sys.stderr
            )
            return 2
        if not mover.ledger.instances_to_move(args.study, target):
            print(f"study {args.study}: nothing to move to {target}")
            return 0
        mover.ledger.request(args.study, target, "manual")
        report = run_move(mover.ledger, mover, PendingMove(args.study, target, "manual", 0), "cli")
        print(
            f"study {args.study} -> {target}: {report.moved} instances moved, "
            f"{report.bytes_read / 1e6:.1f} MB read, {report.bytes_written / 1e6:.1f} MB written"
            + ("" if report.complete else f"; INCOMPLETE: {'; '.join(report.errors[:5])}")
        )
        return 0 if report.complete else 1
    planned = service.apply_policies()
    for move in planned:
        print(f"{move.reason:8} {move.study_uid} -> {move.target}")
    print(f"{len(planned)} moves requested")
    if args.run:
        failed = 0
        while reports := service.run_pending(limit=10):
            failed += sum(1 for r in reports if not r.complete)
            if failed:
                break
        return 1 if failed else 0
    return 0


def format_status(status: dict[str, Any]) -> str:
    """The figures as a small table."""
    lines = [
        f"{'tier':12} {'objects':>10} {'GB':>10} {'GB received':>12} {'saved':>6} "
        f"{'disk free GB':>13}"
    ]
    for tier in status["tiers"]:
        free = tier.get("disk_free_bytes")
        original = tier.get("original_bytes", tier["bytes"])
        saved = f"{100 * (original - tier['bytes']) / original:.0f}%" if original else "-"
        lines.append(
            f"{tier['name']:12} {tier['objects']:>10} {tier['bytes'] / 1e9:>10.3f} "
            f"{original / 1e9:>12.3f} {saved:>6} "
            f"{'unknown' if free is None else f'{free / 1e9:.1f}':>13}"
        )
    for period, figures in status["growth"].items():
        lines.append(
            f"growth ({period.replace('_', ' ')}): {figures['objects_per_day']} objects, "
            f"{figures['bytes_per_day'] / 1e9:.3f} GB per day"
        )
    if "hot_fill_percent" in status:
        lines.append(f"hot tier {status['hot_fill_percent']}% full")
    if "hot_days_left" in status:
        lines.append(f"hot tier full in about {status['hot_days_left']} days at that rate")
    moves = status["moves"]
    lines.append(f"moves requested: {len(moves)}")
    for move in moves:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(move["requested_at"]))
        error = f" (last error: {move['last_error']})" if move["last_error"] else ""
        lines.append(f"  {move['study']} -> {move['target']} [{move['reason']}, {when}]{error}")
    return "\n".join(lines)
