"""Command line: ``pacs serve | check-config | init-db | reconstruct | hash-password |
install-viewer | ai | verify | backup | restore | trash | hold | retention ...``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ai_models.cli import add_ai_commands, run_ai
from pacs import retention_cli, storage_cli, tier_cli
from pacs.core.errors import ConfigError
from pacs.passwords import hash_password, hash_token, new_token
from pacs.settings import Settings, describe, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacs", description="PACS imaging server")
    parser.add_argument("--config", help="TOML configuration file (PACS_* variables override)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the server (DICOM and HTTP) until stopped"),
        ("check-config", "print the effective settings, each with its description"),
        ("init-db", "create or upgrade the index schema, then exit"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    text = (
        "read the indexed names, dates and descriptions again from the stored files, with "
        "the current default encoding (after changing [server] default_encoding)"
    )
    rebuild = commands.add_parser("reconstruct", help=text, description=text)
    rebuild.add_argument(
        "--study", action="append", default=[], metavar="UID", help="only this study (repeat)"
    )
    rebuild.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    storage_cli.add_storage_commands(commands)  # verify, backup, restore
    retention_cli.add_retention_commands(commands)  # trash, hold, retention
    tier_cli.add_tier_commands(commands)  # storage status | migrate | apply-policy
    ai = commands.add_parser("ai", help="AI models: evaluate, worker", description="AI models")
    ai.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    text = "run an AI worker on this machine (claims due series from the shared index)"
    worker = add_ai_commands(ai).add_parser("worker", help=text, description=text)
    worker.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    text = "print a password hash for [http.users] (or, with --token, a new bearer token)"
    hasher = commands.add_parser("hash-password", help=text, description=text)
    hasher.add_argument(
        "--token",
        action="store_true",
        help="make a random bearer token and print it with its hash for [http.tokens]",
    )
    hasher.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    viewer = commands.add_parser(
        "install-viewer",
        help="fetch the OHIF viewer served at /viewer/ from npm (needs npm)",
        description="Fetch the prebuilt OHIF viewer (npm package @ohif/app, pinned version) "
        "into [http] viewer_dir or DEST.",
    )
    viewer.add_argument("dest", nargs="?", help="destination folder (default: [http] viewer_dir)")
    viewer.add_argument("--force", action="store_true", help="reinstall even if up to date")
    viewer.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    return parser


def _install_viewer(settings: Settings, dest: str | None, force: bool) -> int:
    from pacs.viewer import ViewerInstallError, install_viewer

    try:
        done = install_viewer(Path(dest) if dest else settings.viewer_dir, force=force)
    except (ViewerInstallError, OSError) as exc:
        print(f"install-viewer failed: {exc}", file=sys.stderr)
        return 1
    what = "already installed" if done.skipped else f"installed in {done.seconds:.1f} s"
    print(
        f"OHIF viewer (@ohif/app {done.version}) {what}: {done.path} "
        f"({done.files} files, {done.size / 1e6:.0f} MB); served at /viewer/"
    )
    return 0


def _read_password() -> str | None:
    """The password: asked twice on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("the two passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _hash_password(token: bool) -> int:
    if token:
        value = new_token()
        print(f"token (give it to the client; it is not stored): {value}", file=sys.stderr)
        print(hash_token(value))
        return 0
    password = _read_password()
    if password is None:
        return 1
    if len(password) < 8:
        print("refused: use at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pacs`` command."""
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        return _hash_password(args.token)
    config = args.sub_config or args.config
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(describe(settings))
        return 0
    if args.command == "ai" and args.ai_command != "worker":
        return run_ai(args)
    if args.command == "install-viewer":
        return _install_viewer(settings, args.dest, args.force)
    from pacs import main as composition  # the composition root is loaded only to run

    if args.command == "ai":
        composition.run_ai_worker(settings, child=False)
        return 0
    if args.command in storage_cli.STORAGE_COMMANDS:
        return composition.run_storage_command(args, settings)
    if args.command in retention_cli.RETENTION_COMMANDS:
        return composition.run_retention_command(args, settings)
    if args.command == tier_cli.TIER_COMMAND:
        return composition.run_tier_command(args, settings)
    if args.command == "reconstruct":
        return composition.run_reconstruct(settings, args.study)
    if args.command == "init-db":
        archive = composition.build_archive(settings)
        version = archive.index.initialize()
        archive.close()
        print(f"index at {settings.index_url} is at schema version {version}")
        return 0
    composition.serve(settings)
    return 0
