"""``pacs verify``, ``pacs backup`` and ``pacs restore``. The composition root hands in the
blob stores; this module parses arguments, runs the core operations and reports."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pacs.core.backup import backup, restore
from pacs.core.errors import ConfigError
from pacs.core.index.db import Database
from pacs.core.integrity import Problem, Verifier, VerifyReport
from pacs.core.repair import ReplicaRepairer
from pacs.core.scrub import ScrubLedger
from pacs.settings import Settings
from storage import BlobStore

STORAGE_COMMANDS = ("verify", "backup", "restore")


def add_storage_commands(commands: Any) -> None:
    """Add the storage sub-commands to the ``pacs`` parser's sub-parsers."""
    text = "check every stored object against the index (exists, size, SHA-256) and find orphans"
    verify = commands.add_parser("verify", help=text, description=text)
    verify.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    verify.add_argument(
        "--rate", type=float, default=0.0, help="read at most this many MB/s (0 = no limit)"
    )
    verify.add_argument(
        "--since",
        default="",
        help="only instances received since: YYYY-MM-DD, an ISO date-time, or Nd / Nh ago",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="restore missing or corrupt hot copies from [storage] replica_path "
        "(the replica's SHA-256 is checked first)",
    )
    verify.add_argument(
        "--no-orphans", action="store_true", help="skip the search for orphan blobs"
    )
    verify.add_argument(
        "--remove-orphans",
        action="store_true",
        help="delete orphan blobs older than --orphan-min-age (indexed blobs are never touched)",
    )
    verify.add_argument(
        "--orphan-min-age",
        type=float,
        default=3600.0,
        help="seconds; younger unindexed blobs may be in flight and are left alone (default 3600)",
    )

    text = "back up the index and blobs into a folder (consistent while the server runs)"
    backup = commands.add_parser("backup", help=text, description=text)
    backup.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    backup.add_argument(
        "--to", required=True, type=Path, help="backup folder (reused: incremental)"
    )
    backup.add_argument(
        "--rate", type=float, default=0.0, help="copy at most this many MB/s (0 = no limit)"
    )
    text = "restore a backup into an empty site, then verify every object"
    restore = commands.add_parser("restore", help=text, description=text)
    restore.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    restore.add_argument("--from", dest="source", required=True, type=Path, help="backup folder")


def parse_since(text: str, now: float | None = None) -> float:
    """``2024-01-31``, ``2024-01-31T08:00``, ``20240131``, ``7d`` or ``12h`` as a UTC epoch."""
    text = text.strip()
    if not text:
        return 0.0
    now = time.time() if now is None else now
    relative = re.fullmatch(r"(\d+(?:\.\d+)?)([dh])", text)
    if relative:
        amount = float(relative.group(1)) * (86400 if relative.group(2) == "d" else 3600)
        return now - amount
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read --since {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _existing_index(settings: Settings) -> Database | None:
    """The site's index, or None (with a message) when there is no SQLite index file."""
    database = Database(settings.index_url)
    if database.dialect == "sqlite" and not Path(database.sqlite_path).is_file():
        print(f"no index at {database.sqlite_path}: check --config", file=sys.stderr)
        return None
    return database


def run_verify(
    args: argparse.Namespace,
    settings: Settings,
    hot: BlobStore,
    replica: BlobStore | None,
    *,
    everything: BlobStore | None = None,
) -> int:
    """``pacs verify`` over ``everything`` (every storage tier; the hot store when there is
    one tier): 0 when nothing is (left) missing or corrupt, 1 otherwise, 2 on bad usage."""
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.repair and replica is None:
        print("--repair needs [storage] replica_path", file=sys.stderr)
        return 2
    database = _existing_index(settings)
    if database is None:
        return 2
    try:

        def show(problem: Problem) -> None:
            if not args.json:
                print(problem.describe(), flush=True)

        report = Verifier(database, everything or hot).run(
            since=since,
            rate_bytes=args.rate * 1e6,
            orphans=not args.no_orphans,
            remove_orphans=args.remove_orphans,
            orphan_min_age=args.orphan_min_age,
            on_problem=show,
        )
        if args.repair and replica is not None:
            _repair(report, database, hot, replica, quiet=args.json)
    finally:
        database.close()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for orphan in report.orphans:
            age = "unknown age" if orphan.age is None else f"{orphan.age:.0f} s old"
            state = " (removed)" if orphan.removed else ""
            print(f"ORPHAN   blob={orphan.blob_key} {age}{state}")
        print(report.summary())
    return 0 if report.ok else 1


def _repair(
    report: VerifyReport, database: Database, hot: BlobStore, replica: BlobStore, *, quiet: bool
) -> None:
    """Restore each problem's hot copy from the replica; close it in the scrub's ledger."""
    repairer = ReplicaRepairer(hot, replica)
    ledger = ScrubLedger(database)
    for problem in report.problems:
        if repairer(problem):
            report.repaired.append(problem.blob_key)
            with contextlib.suppress(Exception):  # an index from before migration 3 has no ledger
                ledger.resolve(problem.sop_uid, "repaired")
            if not quiet:
                print(f"REPAIRED blob={problem.blob_key} sop={problem.sop_uid} from the replica")
        else:
            report.unrepaired.append(problem.blob_key)
            if not quiet:
                print(f"NOT REPAIRED blob={problem.blob_key} sop={problem.sop_uid} (see the log)")


def run_backup(
    args: argparse.Namespace, settings: Settings, hot: BlobStore, replica: BlobStore | None
) -> int:
    """``pacs backup``: 0 when every blob of the snapshot was copied intact."""
    database = _existing_index(settings)
    if database is None:
        return 2
    try:
        result = backup(database, hot, args.to, replica=replica, rate_bytes=args.rate * 1e6)
    except (ConfigError, RuntimeError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        database.close()
    for problem in result.problems:
        print(f"PROBLEM  {problem}")
    print(result.summary())
    return 0 if not result.problems else 1


def run_restore(
    args: argparse.Namespace, settings: Settings, blobs: BlobStore, hot: BlobStore
) -> int:
    """``pacs restore``: restore into the configured (empty) site, then verify it."""
    database = Database(settings.index_url)
    try:
        result = restore(database, blobs, args.source)
        for problem in result.problems:
            print(f"PROBLEM  {problem}")
        print(result.summary("restored"))
        report = Verifier(database, hot).run(orphans=False)
    except (ConfigError, RuntimeError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    finally:
        database.close()
    for found in report.problems:
        print(found.describe())
    print("verify: " + report.summary())
    return 0 if report.ok and not result.problems else 1
