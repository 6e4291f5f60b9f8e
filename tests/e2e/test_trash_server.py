"""Reversible deletion against a running server with real clients: storescu stores, the
Orthanc API deletes, QIDO-RS and findscu no longer see the study, /storage restores it,
getscu and the Orthanc API return identical bytes; legal hold answers 409; the CLI runs the
retention policies (dry run, then real) and lists the trash; pacs verify finds no orphans."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydicom import dcmread

from pacs.core.ids import public_id
from tests.conftest import RunningServer, run_pacs, start_server, wait_for_port
from tests.e2e.helpers import (
    HOST,
    SERVER_AE,
    dataset_bytes,
    findscu,
    getscu_command,
    require_dcmtk,
    run,
    study_keys,
)
from tests.factories import make_series, new_uid, write

PATIENT = "TRASH-E2E"
CONFIG = (
    "[storage]\nscrub_rate_mb_s = 0\nretention_interval_hours = 0\n"
    '[[storage.retention]]\nname = "ct-30d"\nkeep_days = 30\nmodality = "CT"\n'
    'action = "delete"\n'
)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(tmp_path, CONFIG, name="trash")
    try:
        wait_for_port(server.http_port, process=server.process)
        yield server
    finally:
        server.stop()


def _pacs(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pacs --config <the server's> ARGS`` (the CLI beside the running server)."""
    return run_pacs(server.config, *args, timeout=120)


def _getscu_digests(tools: dict[str, str], port: int, study: str, out: Path) -> dict[str, str]:
    out.mkdir()
    command = getscu_command(tools["getscu"], out, *study_keys(study))
    result = run([*command, HOST, str(port)])
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): hashlib.sha256(
            dataset_bytes(path)
        ).hexdigest()
        for path in out.iterdir()
    }


def _qido(url: str, study: str) -> list[object]:
    response = requests.get(
        f"{url}/dicom-web/studies", params={"StudyInstanceUID": study}, timeout=30
    )
    assert response.status_code in (200, 204)
    return list(response.json()) if response.status_code == 200 and response.content else []


def test_delete_restore_hold_and_retention(node: RunningServer, tmp_path: Path) -> None:
    tools = require_dcmtk("storescu", "findscu", "getscu")
    url = f"http://127.0.0.1:{node.http_port}"
    study = new_uid()
    series = make_series(3, patient_id=PATIENT, study_uid=study, study_date="20200101")
    files = [write(ds, tmp_path / "sent") for ds in series]
    stored = run(
        [tools["storescu"], "-aec", SERVER_AE, "-to", "20", HOST, str(node.dimse_port)]
        + [str(f) for f in files]
    )
    assert stored.returncode == 0, stored.stderr
    sent = {
        str(ds.SOPInstanceUID): hashlib.sha256(dataset_bytes(f)).hexdigest()
        for ds, f in zip(series, files, strict=True)
    }
    study_id = public_id(PATIENT, study)
    first_file = requests.get(
        f"{url}/instances/{public_id(PATIENT, study, str(series[0].SeriesInstanceUID), str(series[0].SOPInstanceUID))}/file",
        timeout=30,
    ).content
    assert len(_qido(url, study)) == 1

    # delete through the Orthanc API: gone from QIDO-RS and C-FIND at once
    deleted = requests.delete(f"{url}/studies/{study_id}", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["RemainingAncestor"] is None
    assert _qido(url, study) == []
    found, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study},
        tmp_path / "find",
    )
    assert found.returncode == 0 and answers == []
    listed = requests.get(f"{url}/storage/deletions", timeout=30).json()
    assert len(listed) == 1
    deletion = listed[0]
    assert deletion["who"] == "anonymous@127.0.0.1" and deletion["door"] == "orthanc-api"
    assert deletion["level"] == "STUDY" and deletion["resource_uid"] == study
    assert deletion["instances"] == 3 and deletion["state"] == "trash"

    # pacs verify: the trashed blobs are not orphans
    verify = _pacs(node, "verify", "--orphan-min-age", "0", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["orphans"] == []

    # restore: the same bytes come back over C-GET and the Orthanc API
    restored = requests.post(f"{url}/storage/deletions/{deletion['id']}/restore", timeout=60)
    assert restored.status_code == 200 and restored.json()["restored"] == 3
    assert len(_qido(url, study)) == 1
    assert _getscu_digests(tools, node.dimse_port, study, tmp_path / "got") == sent
    again = requests.get(
        f"{url}/instances/{public_id(PATIENT, study, str(series[0].SeriesInstanceUID), str(series[0].SOPInstanceUID))}/file",
        timeout=30,
    ).content
    assert hashlib.sha256(again).digest() == hashlib.sha256(first_file).digest()

    # legal hold: the Orthanc API answers 409 with Orthanc's error JSON, retention skips it
    bad = requests.put(f"{url}/storage/holds/studies/{study}", json={}, timeout=30)
    assert bad.status_code == 400 and "reason" in bad.json()["error"]
    hold = requests.put(
        f"{url}/storage/holds/studies/{study}", json={"reason": "litigation 7"}, timeout=30
    )
    assert hold.status_code == 200 and hold.json()["set_by"] == "anonymous@127.0.0.1"
    refused = requests.delete(f"{url}/studies/{study_id}", timeout=30)
    assert refused.status_code == 409
    body = refused.json()
    assert body["HttpStatus"] == 409 and "legal hold" in body["Details"]
    assert len(_qido(url, study)) == 1
    dry = _pacs(node, "retention", "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "held" in dry.stdout and study in dry.stdout
    lifted = requests.delete(
        f"{url}/storage/holds/studies/{study}", json={"reason": "settled"}, timeout=30
    )
    assert lifted.status_code == 200 and lifted.json()["clear_reason"] == "settled"

    # retention: dry run lists the study, the real run moves it to the trash
    dry = _pacs(node, "retention", "run", "--dry-run")
    assert "would-delete" in dry.stdout and study in dry.stdout, dry.stdout
    assert len(_qido(url, study)) == 1
    real = _pacs(node, "retention", "run", "--json")
    assert real.returncode == 0, real.stderr
    entries = json.loads(real.stdout)["entries"]
    assert [(e["study_uid"], e["outcome"]) for e in entries] == [(study, "deleted")]
    assert _qido(url, study) == []
    trash = _pacs(node, "trash", "list")
    assert "retention:ct-30d" in trash.stdout and "trash" in trash.stdout

    # purge now: the blobs go, the audit rows stay
    purge_id = entries[0]["deletion_id"]
    purged = requests.post(f"{url}/storage/deletions/{purge_id}/purge", timeout=60)
    assert purged.status_code == 200 and purged.json()["blobs_deleted"] == 3
    record = requests.get(f"{url}/storage/deletions/{purge_id}", timeout=30).json()
    assert record["state"] == "purged" and record["in_trash"] == 0
    assert not any((node.data_dir / "blobs").rglob("*/*"))
    too_late = requests.post(f"{url}/storage/deletions/{purge_id}/restore", timeout=30)
    assert too_late.status_code == 409
    assert len(requests.get(f"{url}/storage/deletions", timeout=30).json()) == 2

    # bad input: clear errors, never a 500
    for method, path, data, status in (
        ("GET", "/storage/deletions?limit=many", None, 400),
        ("GET", "/storage/deletions?state=lost", None, 400),
        ("GET", "/storage/deletions/999", None, 404),
        ("POST", "/storage/deletions/999/restore", None, 404),
        ("PUT", f"/storage/holds/studies/{study}", b"{not json", 400),
        ("PUT", f"/storage/holds/studies/{new_uid()}", b'{"reason": "x"}', 404),
        ("DELETE", f"/storage/holds/studies/{study}", b'{"reason": "x"}', 404),
        ("POST", "/storage/retention/run", b'{"dry_run": "no"}', 400),
    ):
        answer = requests.request(method, f"{url}{path}", data=data, timeout=30)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error"]
    assert node.process.poll() is None
    assert "Traceback" not in node.log_text()
