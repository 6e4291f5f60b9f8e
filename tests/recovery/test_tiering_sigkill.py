"""A migration between tiers killed by SIGKILL: every instance stays readable from one tier,
and after a restart the migration completes with no orphan left in either tier."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, start_server
from tests.e2e.helpers import store
from tests.factories import make_series


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _rows(index: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(index) as conn:
        return [
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]))
            for r in conn.execute("SELECT sop_uid, blob_key, tier, sha256 FROM instances")
        ]


def _assert_every_instance_readable(index: Path, folders: dict[str, Path]) -> None:
    """Each row's blob is in the tier it names, with the SHA-256 the index records."""
    for sop_uid, key, tier, sha256 in _rows(index):
        path = folders[tier] / key[:8] / key
        assert path.is_file(), f"{sop_uid}: {path} missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{sop_uid} corrupt"


@pytest.mark.slow
def test_a_migration_killed_midway_resumes_and_loses_nothing(tmp_path: Path) -> None:
    cold = tmp_path / "nas" / "cold"
    config = (
        # ~1 MB instances copied at 2 MB/s: the move of 12 MB takes several seconds
        "[storage]\ntiering_interval_s = 1\nscrub_rate_mb_s = 0\nmigration_rate_mb_s = 2\n"
        f'[[storage.tiers]]\nname = "cold"\nlocation = "{cold}"\n'
        "after_days_without_access = 0.00003\n"  # about 2.6 seconds
    )
    server = start_server(tmp_path, config)
    datasets = make_series(12, rows=724, columns=724)
    assert store(server.dimse_port, datasets) == [0] * 12
    hot = server.data_dir / "blobs"
    index = server.data_dir / "index.sqlite"
    folders = {"hot": hot, "cold": cold}
    try:
        deadline = time.monotonic() + 60
        while not _files(cold) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # some copies written, the batch not switched
        assert _files(cold), server.log_text()[-3000:]
    finally:
        server.process.kill()  # SIGKILL
        server.process.wait()
    _assert_every_instance_readable(index, folders)
    assert {tier for _, _, tier, _ in _rows(index)} == {"hot"}  # the batch was not switched

    restarted = start_server(tmp_path, config, data_dir=server.data_dir, name="restarted")
    try:
        deadline = time.monotonic() + 90
        tiers: dict[str, int] = {}
        while time.monotonic() < deadline and tiers.get("cold") != 12:
            time.sleep(0.5)
            try:
                url = f"http://127.0.0.1:{restarted.http_port}/storage"
                with urllib.request.urlopen(url, timeout=10) as response:
                    tiers = {t["name"]: t["objects"] for t in json.load(response)["tiers"]}
            except OSError:  # the HTTP port opens after the DICOM one
                continue
        assert tiers == {"hot": 0, "cold": 12}, restarted.log_text()[-3000:]
    finally:
        restarted.stop()
    _assert_every_instance_readable(index, folders)
    assert len(_files(cold)) == 12 and _files(hot) == []  # no partial copy, no source left
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "pacs",
            "--config",
            str(restarted.config),
            "verify",
            "--orphan-min-age",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["checked"] == 12 and report["orphans"] == [], verify
