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


def test_with_a_replica_the_scrub_repairs_what_it_finds(tmp_path: Path) -> None:
    replica = tmp_path / "nas"
    server = start_server(
        tmp_path,
        extra_config=(
            f'[storage]\nscrub_rate_mb_s = 50\nscrub_pass_hours = 0.0003\nreplica_path = "{replica}"\n'
        ),
    )
    try:
        datasets = make_series(3)
        assert store(server.dimse_port, datasets) == [0] * 3
        blobs = [blob_of(server.data_dir, str(ds.SOPInstanceUID)) for ds in datasets]
        originals = [path.read_bytes() for path in blobs]
        assert [(replica / p.parent.name / p.name).read_bytes() for p in blobs] == originals
        damaged = bytearray(originals[0])
        damaged[-5] ^= 0x01
        blobs[0].write_bytes(bytes(damaged))
        blobs[1].unlink()
        deadline = time.monotonic() + 60
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            status = _integrity(server.http_port)
            states = {p["sop_uid"]: p["state"] for p in status["problems"]}
            if len(states) == 2 and set(states.values()) == {"repaired"}:
                break
            time.sleep(0.5)
        assert states == {
            str(datasets[0].SOPInstanceUID): "repaired",
            str(datasets[1].SOPInstanceUID): "repaired",
        }
        assert [path.read_bytes() for path in blobs] == originals
    finally:
        server.stop()
