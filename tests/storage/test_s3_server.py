"""End to end: ``pacs serve`` with an S3 replica (moto_server), fed by DCMTK storescu;
``pacs verify``, ``backup`` and ``verify --repair`` over a replica that has no local path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO, start_server
from tests.e2e.helpers import HOST, SERVER_AE, blob_of, require_dcmtk, run
from tests.factories import make_series, write
from tests.storage.conftest import bucket_of


def _pacs(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACS_")}
    command = [sys.executable, "-m", "pacs", *args, "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_storescu_to_a_server_with_an_s3_replica(
    tmp_path: Path, s3_url: str, s3_client: Any
) -> None:
    storescu = require_dcmtk("storescu")["storescu"]
    datasets = make_series(3)
    files = [write(ds, tmp_path / "outgoing") for ds in datasets]
    server = start_server(tmp_path, extra_config=f'[storage]\nreplica_path = "{s3_url}"\n')
    try:
        sent = run(
            [storescu, "-aec", SERVER_AE, "-to", "20", HOST, str(server.dimse_port)]
            + [str(path) for path in files]
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        server.stop()

    hot = {
        str(ds.SOPInstanceUID): blob_of(server.data_dir, str(ds.SOPInstanceUID)) for ds in datasets
    }
    bucket = bucket_of(s3_url)
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="archive/")["Contents"]
    assert len(listed) == 3
    for path in hot.values():
        key = path.name
        reply = s3_client.get_object(Bucket=bucket, Key=f"archive/{key[:8]}/{key}")
        content = reply["Body"].read()
        assert content == path.read_bytes()
        assert reply["Metadata"]["sha256"] == hashlib.sha256(content).hexdigest()

    verified = _pacs(server.config, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checked 3 objects" in verified.stdout and "0 missing, 0 corrupt" in verified.stdout

    lost = hot[str(datasets[1].SOPInstanceUID)]
    original = lost.read_bytes()
    lost.unlink()  # the hot copy is gone: backup reads the S3 copy, repair restores from it
    backed_up = _pacs(server.config, "backup", "--to", str(tmp_path / "backup"))
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    assert (tmp_path / "backup" / "blobs" / lost.parent.name / lost.name).read_bytes() == original
    assert _pacs(server.config, "verify").returncode == 1
    repaired = _pacs(server.config, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"REPAIRED blob={lost.name}" in repaired.stdout
    assert lost.read_bytes() == original
