"""The scrub inside a running server: a corrupted and a deleted blob show up at /integrity."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.conftest import start_server
from tests.e2e.helpers import blob_of, store
from tests.factories import make_series


def _integrity(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/integrity", timeout=10) as response:
        return json.loads(response.read())


def test_scrub_finds_a_flipped_byte_and_a_deleted_blob(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, extra_config="[storage]\nscrub_rate_mb_s = 50\nscrub_pass_hours = 0.0003\n"
    )
    try:
        datasets = make_series(4)
        assert store(server.dimse_port, datasets) == [0] * 4
        corrupt = blob_of(server.data_dir, str(datasets[0].SOPInstanceUID))
        data = bytearray(corrupt.read_bytes())
        data[-5] ^= 0x01
        corrupt.write_bytes(bytes(data))
        blob_of(server.data_dir, str(datasets[2].SOPInstanceUID)).unlink()
        deadline = time.monotonic() + 60
        status = _integrity(server.http_port)
        while status["open_problems"] < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            status = _integrity(server.http_port)
        kinds = {p["sop_uid"]: p["kind"] for p in status["problems"] if p["state"] == "open"}
        assert kinds == {
            str(datasets[0].SOPInstanceUID): "corrupt",
            str(datasets[2].SOPInstanceUID): "missing",
        }
        assert status["scrub"]["enabled"] and status["scrub"]["passes_completed"] >= 1
        assert "scrub: CORRUPT" in server.log_text()
    finally:
        server.stop()
