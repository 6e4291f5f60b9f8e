"""Command line: ``pacs serve | check-config | init-db | install-viewer | ai ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai_models.cli import add_ai_commands, run_ai
from pacs import storage_cli
from pacs.core.errors import ConfigError
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
    storage_cli.add_storage_commands(commands)  # verify, backup, restore
    ai = commands.add_parser("ai", help="AI models: evaluate, worker", description="AI models")
    ai.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    text = "run an AI worker on this machine (claims due series from the shared index)"
    worker = add_ai_commands(ai).add_parser("worker", help=text, description=text)
    worker.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pacs`` command."""
    args = _parser().parse_args(argv)
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
    if args.command == "init-db":
        archive = composition.build_archive(settings)
        version = archive.index.initialize()
        archive.close()
        print(f"index at {settings.index_url} is at schema version {version}")
        return 0
    composition.serve(settings)
    return 0
