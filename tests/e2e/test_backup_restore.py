"""Backup and restore end to end: a real server keeps receiving while ``pacs backup`` runs;
the backup restores into a fresh folder with ``pacs restore`` (which verifies it), and a
server started on the restored site returns every backed-up instance bit for bit."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from pydicom.dataset import Dataset

from tests.conftest import REPO, start_server
from tests.e2e.helpers import (
    association,
    c_get,
    dcmtk_tool,
    image_uids,
    query,
    store,
    transfer_syntax_of,
)
from tests.factories import make_image, make_series, new_uid, write


def _pacs(command: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    return subprocess.run(
        [sys.executable, "-m", "pacs", command, "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def _keep_storing(port: int, stop: threading.Event, stored: list[str]) -> None:
    """C-STORE new instances on one association until told to stop."""
    study, series = new_uid(), new_uid()
    first = make_image(study_uid=study, series_uid=series, rows=64, columns=64)
    contexts = [(str(first.SOPClassUID), [transfer_syntax_of(first)])]
    with association(port, contexts) as assoc:
        number = 0
        while not stop.is_set() and number < 5000:
            number += 1
            ds = make_image(
                study_uid=study, series_uid=series, instance_number=number, rows=64, columns=64
            )
            answer = assoc.send_c_store(ds)
            if int(answer.Status) == 0:
                stored.append(str(ds.SOPInstanceUID))


def _wado(port: int, study: str, series: str, sop: str) -> bytes:
    url = (
        f"http://127.0.0.1:{port}/wado?requestType=WADO&studyUID={study}&seriesUID={series}"
        f"&objectUID={sop}&contentType=application/dicom"
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def _backed_up(folder: Path) -> list[tuple[str, str, str]]:
    """(study, series, SOP Instance UID) of every instance in the backup's index."""
    manifest = json.loads((folder / "manifest.json").read_text())
    with sqlite3.connect(folder / manifest["index"]["file"]) as conn:
        rows = conn.execute(
            "SELECT st.study_uid, se.series_uid, i.sop_uid FROM instances i "
            "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_backup_during_ingest_restores_a_consistent_archive(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    restored = None
    try:
        # A first study, sent with DCMTK's storescu where installed.
        first = make_series(5, rows=32, columns=32)
        storescu = dcmtk_tool("storescu")
        if storescu:
            files = [str(write(ds, tmp_path / "in")) for ds in first]
            sent = subprocess.run(
                [storescu, "-aec", "PACS", "127.0.0.1", str(server.dimse_port), *files],
                capture_output=True,
                timeout=60,
            )
            assert sent.returncode == 0, sent.stderr
        else:
            assert store(server.dimse_port, first) == [0] * 5

        # Back up while a client keeps storing.
        stop, stored = threading.Event(), []
        sender = threading.Thread(target=_keep_storing, args=(server.dimse_port, stop, stored))
        sender.start()
        try:
            deadline = time.monotonic() + 60
            while len(stored) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            backup_dir = tmp_path / "backup"
            result = _pacs("backup", server.config, "--to", str(backup_dir))
            during = len(stored)
            # verify is safe during ingest: blobs in flight are not orphans, nothing fails.
            checked = _pacs("verify", server.config)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "0 missing, 0 corrupt, 0 orphan" in checked.stdout
        finally:
            stop.set()
            sender.join(timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(stored) > during >= 20, "the backup must have run during ingest"

        backed_up = _backed_up(backup_dir)
        sops = {sop for _, _, sop in backed_up}
        assert {str(ds.SOPInstanceUID) for ds in first} <= sops
        assert 20 <= len(sops) - 5 <= len(stored)
        assert sops - {str(ds.SOPInstanceUID) for ds in first} <= set(stored)

        # Restore into a fresh folder; restore verifies every object.
        fresh = tmp_path / "fresh"
        config = tmp_path / "fresh.toml"
        config.write_text(f'[server]\ndata_dir = "{fresh}"\n', encoding="utf-8")
        result = _pacs("restore", config, "--from", str(backup_dir))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"checked {len(sops)} objects" in result.stdout and "OK" in result.stdout
        assert _pacs("verify", config).returncode == 0

        # A server on the restored site: C-FIND sees exactly the backed-up instances,
        # C-GET and WADO return the original bytes.
        restored = start_server(tmp_path, name="restored", data_dir=fresh)
        found: set[str] = set()
        for study in {study for study, _, _ in backed_up}:
            found |= image_uids(restored.dimse_port, StudyInstanceUID=study)
        assert found == sops
        for study, series, sop in backed_up:
            original = _wado(server.http_port, study, series, sop)
            assert _wado(restored.http_port, study, series, sop) == original
        identifier: Dataset = query("STUDY", StudyInstanceUID=str(first[0].StudyInstanceUID))
        final, _, got = c_get(
            restored.dimse_port,
            identifier,
            [str(first[0].SOPClassUID)],
            [transfer_syntax_of(first[0])],
        )
        assert int(final.Status) == 0
        assert {sop: ds.PixelData for sop, ds in got.items()} == {
            str(ds.SOPInstanceUID): ds.PixelData for ds in first
        }
    finally:
        server.stop()
        if restored is not None:
            restored.stop()
