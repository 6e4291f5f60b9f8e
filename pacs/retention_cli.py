"""``pacs trash``, ``pacs hold`` and ``pacs retention``: the deletion audit and trash, legal
holds and the retention policies from the command line (safe while the server runs)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from pacs.core.archive import Archive
from pacs.core.errors import Conflict, InvalidQuery, NotFound, OnLegalHold, StorageUnavailable
from pacs.core.retention import run_retention
from pacs.core.retention_policy import RetentionPolicy

RETENTION_COMMANDS = ("trash", "hold", "retention")


def add_retention_commands(commands: Any) -> None:
    """Add ``trash``, ``hold`` and ``retention`` to the ``pacs`` parser's sub-parsers."""
    text = "deleted resources: list them, restore one, purge the trash"
    trash = commands.add_parser("trash", help=text, description=text)
    trash.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    actions = trash.add_subparsers(dest="trash_command", required=True)
    listing = actions.add_parser("list", help="deletions, newest first")
    listing.add_argument("--state", default="", help="trash, restored, purging or purged")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON")
    restore = actions.add_parser("restore", help="bring a deletion back (same UIDs and files)")
    restore.add_argument("id", type=int, help="deletion id (from `pacs trash list`)")
    purge = actions.add_parser("purge", help="delete the files of trashed resources for good")
    purge.add_argument("id", type=int, nargs="?", help="one deletion, even in its grace period")
    purge.add_argument(
        "--expired", action="store_true", help="every deletion past its grace period"
    )
    for sub in (listing, restore, purge):
        sub.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)

    text = "legal holds: a held study (or patient) cannot be deleted or purged"
    hold = commands.add_parser("hold", help=text, description=text)
    hold.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    hold_actions = hold.add_subparsers(dest="hold_command", required=True)
    for name, help_text in (("set", "place a hold"), ("clear", "lift a hold")):
        sub = hold_actions.add_parser(name, help=help_text)
        sub.add_argument("uid", help="Study Instance UID (or Patient ID with --patient)")
        sub.add_argument("--reason", required=True, help="why (recorded with who and when)")
        sub.add_argument("--patient", action="store_true", help="the UID is a Patient ID")
        sub.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    hold_list = hold_actions.add_parser("list", help="active holds")
    hold_list.add_argument("--all", action="store_true", help="cleared ones too")
    hold_list.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)

    text = "apply the [[storage.retention]] policies now"
    retention = commands.add_parser("retention", help=text, description=text)
    retention.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    ret_actions = retention.add_subparsers(dest="retention_command", required=True)
    run = ret_actions.add_parser("run", help="list (and unless --dry-run, delete) expired studies")
    run.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)


def _who() -> str:
    try:
        return f"{getpass.getuser()}@cli"
    except (KeyError, OSError):
        return "unknown@cli"


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


def _trash(args: argparse.Namespace, archive: Archive) -> int:
    if args.trash_command == "list":
        listed = archive.trash.deletions(args.state, args.limit)
        if args.json:
            print(json.dumps(listed, indent=2))
            return 0
        for d in listed:
            print(
                f"{d['id']:>6} {d['state']:9} {_when(d['created_at'])} {d['who']} via "
                f"{d['door']}: {d['level']} {d['resource_uid']} (patient {d['patient_id']}, "
                f"{d['instances']} instances, {d['bytes'] / 1e6:.1f} MB) "
                f"purge after {_when(d['purge_after'])}"
                + (f" - {d['reason']}" if d["reason"] else "")
            )
        return 0
    if args.trash_command == "restore":
        result = archive.trash.restore(args.id, _who())
        print(f"deletion {args.id}: {result.restored} instances restored")
        for sop_uid, why in result.skipped.items():
            print(f"  skipped {sop_uid}: {why}")
        return 0
    if args.id is None and not args.expired:
        raise InvalidQuery("give a deletion id or --expired")
    purged = archive.trash.purge(args.id, expired_only=args.id is None)
    print(f"purged {len(purged.purged)} deletion(s): {purged.blobs_deleted} files deleted")
    for deletion_id, why in purged.held.items():
        print(f"  kept {deletion_id}: {why}")
    for deletion_id, why in purged.unavailable.items():
        print(f"  stopped {deletion_id}: {why}")
    return 1 if purged.unavailable else 0


def _hold(args: argparse.Namespace, archive: Archive) -> int:
    if args.hold_command == "list":
        for hold in archive.holds.holds(include_cleared=args.all):
            cleared = (
                f"; cleared {_when(hold.cleared_at)} by {hold.cleared_by}: {hold.clear_reason}"
                if hold.cleared_at
                else ""
            )
            print(
                f"{hold.level} {hold.uid}: set {_when(hold.set_at)} by {hold.set_by}: "
                f"{hold.reason}{cleared}"
            )
        return 0
    level = "PATIENT" if args.patient else "STUDY"
    if args.hold_command == "set":
        hold = archive.holds.place(level, args.uid, args.reason, _who())
        print(f"hold on {level.lower()} {hold.uid} (set by {hold.set_by})")
    else:
        archive.holds.lift(level, args.uid, args.reason, _who())
        print(f"hold on {level.lower()} {args.uid} lifted")
    return 0


def _retention(
    args: argparse.Namespace, archive: Archive, policies: Sequence[RetentionPolicy]
) -> int:
    if not policies:
        print("no [[storage.retention]] policies are configured: every study is kept")
        return 0
    report = run_retention(archive, policies, dry_run=args.dry_run, who=f"retention ({_who()})")
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    for policy in policies:
        print(f"policy {policy.describe()}")
    for e in report.entries:
        print(
            f"{e.outcome:12} study {e.study_uid} (patient {e.patient_id}, date "
            f"{e.study_date or '-'}, {e.age_days / 365.25:.1f} years) policy {e.policy}"
            + (f" -> deletion {e.deletion_id}" if e.deletion_id else "")
        )
    print(report.summary())
    return 1 if any(e.outcome.startswith("failed") for e in report.entries) else 0


def run_retention_command(
    args: argparse.Namespace, archive: Archive, policies: Sequence[RetentionPolicy]
) -> int:
    """Run one ``trash``, ``hold`` or ``retention`` command; errors printed, exit 1."""
    try:
        if args.command == "trash":
            return _trash(args, archive)
        if args.command == "hold":
            return _hold(args, archive)
        return _retention(args, archive, policies)
    except (NotFound, InvalidQuery, Conflict, OnLegalHold, StorageUnavailable) as exc:
        print(f"pacs {args.command}: {exc}", file=sys.stderr)
        return 1
