"""Storage tiers against a running server: the age policy moves studies to a cold folder,
DCMTK getscu and DICOMweb WADO read them there and bring them back, and an unreachable cold
tier leaves hot studies readable while cold reads get a clear error."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread

from pacs.core.ids import public_id
from tests.conftest import start_server
from tests.e2e.helpers import (
    HOST,
    assert_alive,
    dataset_bytes,
    final_counts,
    getscu_command,
    require_dcmtk,
    run,
    study_keys,
)
from tests.factories import make_series, write


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _storage(port: int) -> dict[str, Any]:
    status, body = _get(port, "/storage")
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def _objects(port: int) -> dict[str, int]:
    return {tier["name"]: tier["objects"] for tier in _storage(port)["tiers"]}


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _study_files(folder: Path, count: int, patient: str) -> tuple[str, list[Path]]:
    datasets = make_series(count, rows=128, columns=128, patient_id=patient)
    return str(datasets[0].StudyInstanceUID), [write(ds, folder) for ds in datasets]


def _getscu(getscu: str, out: Path, study: str, port: int) -> tuple[int, str]:
    out.mkdir(parents=True, exist_ok=True)
    result = run([*getscu_command(getscu, out, *study_keys(study)), HOST, str(port)])
    return result.returncode, result.stdout + result.stderr


def test_cold_studies_are_read_recalled_and_fail_clearly_when_unreachable(
    tmp_path: Path,
) -> None:
    tools = require_dcmtk("storescu", "getscu")
    cold = tmp_path / "nas" / "cold"
    server = start_server(
        tmp_path,
        "[storage]\ntiering_interval_s = 1\nscrub_rate_mb_s = 0\n"
        f'[[storage.tiers]]\nname = "cold"\nlocation = "{cold}"\n'
        "after_days_without_access = 0.0001\n",  # about 9 seconds
    )
    try:
        by_get, get_files = _study_files(tmp_path / "a", 3, "TIER-A")
        by_wado, _ = _study_files(tmp_path / "b", 2, "TIER-B")
        sent = run([tools["storescu"], HOST, str(server.dimse_port), *map(str, get_files)])
        assert sent.returncode == 0, sent.stderr
        sent = run([tools["storescu"], "+sd", HOST, str(server.dimse_port), str(tmp_path / "b")])
        assert sent.returncode == 0, sent.stderr
        _wait(lambda: _objects(server.http_port).get("cold") == 5, "the age policy")
        assert len([p for p in cold.rglob("*") if p.is_file()]) == 5

        # C-GET of a cold study: the bytes sent, then the study is recalled
        code, output = _getscu(tools["getscu"], tmp_path / "got", by_get, server.dimse_port)
        assert code == 0 and final_counts(output).get("Completed") == 3, output[-3000:]
        received = {p.name: dataset_bytes(p) for p in (tmp_path / "got").iterdir()}
        assert sorted(received.values()) == sorted(dataset_bytes(p) for p in get_files)
        # WADO-RS of the other cold study
        status, body = _get(server.http_port, f"/dicom-web/studies/{by_wado}")
        assert status == 200 and body.count(b"Content-Type: application/dicom") == 2
        _wait(lambda: _objects(server.http_port).get("hot") == 5, "the recalls")
        stats = json.loads(_get(server.http_port, "/statistics")[1])
        assert stats["CountInstances"] == 5 and {t["name"] for t in stats["StorageTiers"]} == {
            "hot",
            "cold",
        }

        # the NAS goes away while both studies are cold again
        _wait(lambda: _objects(server.http_port).get("cold") == 5, "the age policy again")
        cold.rename(cold.with_name("unmounted"))
        fresh, _ = _study_files(tmp_path / "c", 2, "TIER-C")
        sent = run([tools["storescu"], "+sd", HOST, str(server.dimse_port), str(tmp_path / "c")])
        assert sent.returncode == 0, sent.stderr
        status, body = _get(server.http_port, f"/dicom-web/studies/{fresh}")
        assert status == 200 and body.count(b"Content-Type: application/dicom") == 2
        status, body = _get(server.http_port, f"/dicom-web/studies/{by_wado}")
        assert status == 503, body
        assert (
            "cold" in json.loads(body)["error"] and "cannot be reached" in json.loads(body)["error"]
        )
        ds = dcmread(get_files[0], stop_before_pixels=True)
        instance_id = public_id("TIER-A", by_get, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        status, body = _get(server.http_port, f"/instances/{instance_id}/file")
        assert status == 503 and b"cannot be reached" in body, body
        code, output = _getscu(tools["getscu"], tmp_path / "got2", by_get, server.dimse_port)
        assert final_counts(output).get("Failed") == 3, output[-3000:]
        assert "cannot be reached" in server.log_text()
        assert_alive(server)
        code, output = _getscu(tools["getscu"], tmp_path / "got3", fresh, server.dimse_port)
        assert code == 0 and final_counts(output).get("Completed") == 2, output[-3000:]
    finally:
        server.stop()
