"""Storage tiers end to end, against a running server with real clients:

- a JPEG-LS compressed cold tier: storescu stores CT slices, ``pacs storage migrate`` moves
  the study, the cold folder holds fewer bytes, ``/storage`` and ``pacs storage status`` say
  what is saved, getscu taking only uncompressed syntaxes and DICOMweb asking for Explicit VR
  Little Endian get the original pixels, getscu taking JPEG-LS gets JPEG-LS, ``pacs verify``
  is clean;
- an S3 tier on moto_server: migrate, read back by WADO-RS and getscu (then recalled),
  verify covers it, free space 'unknown'; the S3 server stops: hot studies are still read,
  cold reads get 503 and a DIMSE failure, the server stays up.
"""

from __future__ import annotations

import subprocess
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from tests.conftest import RunningServer, run_pacs, start_server
from tests.e2e.helpers import (
    HOST,
    assert_alive,
    final_counts,
    getscu_command,
    require_dcmtk,
    run,
    study_keys,
)
from tests.e2e.test_tiering import _wait
from tests.factories import make_ct_series, write
from tests.s3_server import moto_server, s3_location

pytestmark = pytest.mark.integration


def _pacs(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pacs --config <the server's> ARGS``, beside the running server."""
    return run_pacs(server.config, *args)


def _tiers(server: RunningServer) -> dict[str, dict[str, Any]]:
    response = requests.get(f"http://{HOST}:{server.http_port}/storage", timeout=30)
    assert response.status_code == 200, response.text
    return {tier["name"]: tier for tier in response.json()["tiers"]}


def _store(
    tools: dict[str, str], server: RunningServer, folder: Path, count: int, patient: str
) -> tuple[str, dict[str, Dataset]]:
    datasets = make_ct_series(count, patient_id=patient)
    files = [write(ds, folder) for ds in datasets]
    sent = run([tools["storescu"], HOST, str(server.dimse_port), *map(str, files)])
    assert sent.returncode == 0, sent.stderr
    return str(datasets[0].StudyInstanceUID), {str(ds.SOPInstanceUID): ds for ds in datasets}


def _getscu(
    tools: dict[str, str], server: RunningServer, out: Path, study: str, *options: str
) -> tuple[dict[str, Any], str]:
    out.mkdir(parents=True)
    command = getscu_command(tools["getscu"], out, *study_keys(study), *options, aet="TIER-GETSCU")
    result = run([*command, HOST, str(server.dimse_port)])
    text = result.stdout + result.stderr
    return {str(ds.SOPInstanceUID): ds for ds in map(dcmread, out.iterdir())}, text


def _same_pixels(received: dict[str, Any], originals: dict[str, Any]) -> None:
    assert received.keys() == originals.keys()
    for sop, ds in received.items():
        expected = originals[sop].pixel_array
        assert ds.pixel_array.dtype == expected.dtype and np.array_equal(ds.pixel_array, expected)


def _wado(server: RunningServer, study: str, syntax: str = "") -> tuple[int, list[bytes]]:
    accept = 'multipart/related; type="application/dicom"' + (
        f"; transfer-syntax={syntax}" if syntax else ""
    )
    response = requests.get(
        f"http://{HOST}:{server.http_port}/dicom-web/studies/{study}",
        headers={"Accept": accept},
        timeout=60,
    )
    if response.status_code != 200:
        return response.status_code, [response.content]
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    return 200, [bytes(part.get_payload(decode=True)) for part in message.iter_parts()]


def _files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_compressed_cold_tier_end_to_end(tmp_path: Path) -> None:
    tools = require_dcmtk("storescu", "getscu")
    cold = tmp_path / "nas" / "cold"
    server = start_server(
        tmp_path,
        "[storage]\ntiering_interval_s = 1\nscrub_rate_mb_s = 0\n"
        f'[[storage.tiers]]\nname = "cold"\nlocation = "{cold}"\ncompress = "jpeg-ls"\n',
    )
    try:
        study, originals = _store(tools, server, tmp_path / "ct", 4, "TIER-JLS")
        original_bytes = _tiers(server)["hot"]["bytes"]
        moved = _pacs(server, "storage", "migrate", "--study", study, "--to", "cold")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert "4 instances moved" in moved.stdout
        stored = _files_size(cold)
        assert 0 < stored < original_bytes / 2  # CT-like slices: about 3:1
        tier = _tiers(server)["cold"]
        assert tier["objects"] == 4 and tier["bytes"] == stored
        assert tier["original_bytes"] == original_bytes
        assert tier["saved_bytes"] == original_bytes - stored
        status = _pacs(server, "storage", "status")
        assert status.returncode == 0 and "cold" in status.stdout, status.stderr
        assert f"{100 * (original_bytes - stored) / original_bytes:.0f}%" in status.stdout

        # DICOMweb asking for Explicit VR Little Endian: decoded, the original pixels
        code, parts = _wado(server, study, str(ExplicitVRLittleEndian))
        assert code == 200 and len(parts) == 4
        decoded = {str(ds.SOPInstanceUID): ds for ds in (dcmread(BytesIO(p)) for p in parts)}
        assert {str(ds.file_meta.TransferSyntaxUID) for ds in decoded.values()} == {
            str(ExplicitVRLittleEndian)
        }
        _same_pixels(decoded, originals)
        # getscu taking uncompressed syntaxes only: decoded on the way
        received, text = _getscu(tools, server, tmp_path / "plain", study)
        assert final_counts(text).get("Completed") == 4, text[-3000:]
        assert not any(ds.file_meta.TransferSyntaxUID.is_compressed for ds in received.values())
        _same_pixels(received, originals)
        # getscu taking JPEG-LS: the stored bytes
        received, text = _getscu(tools, server, tmp_path / "jls", study, "+xt")
        assert final_counts(text).get("Completed") == 4, text[-3000:]
        assert {ds.file_meta.TransferSyntaxUID for ds in received.values()} == {JPEGLSLossless}
        _same_pixels(received, originals)

        # the reads recalled the study to the hot tier, compressed as it is
        _wait(lambda: _tiers(server)["hot"]["objects"] == 4, "the recall")
        assert _tiers(server)["hot"]["saved_bytes"] == original_bytes - stored
        _wait(lambda: _files_size(cold) == 0, "the cold copies deleted after the switch")
        verified = _pacs(server, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "checked 4 objects" in verified.stdout and "0 orphan" in verified.stdout
        assert_alive(server)
    finally:
        server.stop()


def test_an_s3_tier_end_to_end_and_when_s3_goes_away(tmp_path: Path) -> None:
    tools = require_dcmtk("storescu", "getscu")
    with moto_server(tmp_path / "s3") as s3:
        import boto3

        location = s3_location(s3.url, "pacs-cold", "tier")
        server = start_server(
            tmp_path,
            "[storage]\ntiering_interval_s = 1\nscrub_rate_mb_s = 0\n"
            f'[[storage.tiers]]\nname = "s3"\nlocation = "{location}"\n',
        )
        client = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1")

        def objects() -> int:
            return int(client.list_objects_v2(Bucket="pacs-cold").get("KeyCount", 0))

        try:
            cold, originals = _store(tools, server, tmp_path / "a", 3, "TIER-S3A")
            hot, _ = _store(tools, server, tmp_path / "b", 2, "TIER-S3B")
            moved = _pacs(server, "storage", "migrate", "--study", cold, "--to", "s3")
            assert moved.returncode == 0, moved.stdout + moved.stderr
            assert objects() == 3
            tier = _tiers(server)["s3"]
            assert tier["objects"] == 3 and tier["disk_free_bytes"] is None
            status = _pacs(server, "storage", "status")
            assert "unknown" in status.stdout, status.stdout + status.stderr
            verified = _pacs(server, "verify")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert "checked 5 objects" in verified.stdout and "0 orphan" in verified.stdout

            code, parts = _wado(server, cold)
            assert code == 200 and len(parts) == 3
            received, text = _getscu(tools, server, tmp_path / "got", cold)
            assert final_counts(text).get("Completed") == 3, text[-3000:]
            _same_pixels(received, originals)
            _wait(lambda: _tiers(server)["hot"]["objects"] == 5, "the recall")
            # the S3 copies are deleted after the index has switched to the hot ones
            _wait(lambda: objects() == 0, "the S3 copies deleted after the switch")

            moved = _pacs(server, "storage", "migrate", "--study", cold, "--to", "s3")
            assert moved.returncode == 0 and objects() == 3, moved.stdout + moved.stderr
            s3.stop()  # the object store goes away
            code, parts = _wado(server, hot)
            assert code == 200 and len(parts) == 2
            code, body = _wado(server, cold)
            assert code == 503, body
            received, text = _getscu(tools, server, tmp_path / "got2", cold)
            assert final_counts(text).get("Failed") == 3 and not received, text[-3000:]
            received, text = _getscu(tools, server, tmp_path / "got3", hot)
            assert final_counts(text).get("Completed") == 2, text[-3000:]
            assert _tiers(server)["s3"]["objects"] == 3  # figures from the index still
            assert_alive(server)
        finally:
            server.stop()
