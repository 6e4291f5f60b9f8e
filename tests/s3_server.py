"""A real S3-compatible server for tests: ``moto_server`` (moto[server]) as its own process.

Why moto: no MinIO, Garage, SeaweedFS or versitygw server is packaged on PyPI, Debian or
npm (checked: apt-cache, the PyPI and npm indexes); Ceph RGW needs a whole Ceph cluster. moto's
server is an S3 implementation run as its own process over HTTP, speaking the S3 REST API
(SigV4, multipart uploads, ranged GETs, pagination) to the real boto3 client. It does not
validate ``x-amz-checksum-*`` headers (AWS and MinIO do), so those checks are not exercised.
Callers skip, saying why, when ``moto_server`` is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "pacs-test",
    "AWS_SECRET_ACCESS_KEY": "pacs-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class MotoServer:
    """A running ``moto_server``: its URL, and a way to stop it early (an outage)."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (idempotent); its data is gone with it."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[MotoServer]:
    """Start ``moto_server`` on a free port with the test credentials in the environment (so
    server subprocesses started meanwhile inherit them); skip when it is not installed."""
    program = shutil.which("moto_server")
    if program is None:
        pytest.skip("no S3 server: moto_server is not installed (pip install 'moto[server]')")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    saved = {name: os.environ.get(name) for name in [*CREDENTIALS, "AWS_PROFILE"]}
    with open(folder / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [program, "-H", "127.0.0.1", "-p", str(port)],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = MotoServer(f"http://127.0.0.1:{port}", process)
        os.environ.update(CREDENTIALS)
        os.environ.pop("AWS_PROFILE", None)
        try:
            wait_for_port(port, timeout=60, process=process)
            yield server
        finally:
            server.stop()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def s3_location(endpoint: str, bucket: str, prefix: str = "archive") -> str:
    """An ``s3://`` location on ``endpoint`` (the bucket created on the first write)."""
    return f"s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&create_bucket=true"
