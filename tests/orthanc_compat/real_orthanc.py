"""A real Orthanc (``apt-get install orthanc``) on free ports, for side-by-side tests; the
test skips where it is not installed."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_for_port


@contextlib.contextmanager
def running_orthanc(folder: Path, **config: Any) -> Iterator[str]:
    """Orthanc with its storage in ``folder`` and ``config`` over our defaults (no
    authentication, no plugins, free ports); yields its HTTP base URL."""
    binary = shutil.which("Orthanc")
    if binary is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    http_port = free_port()
    settings = {
        "Name": "orthanc",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomPort": free_port(),
        "HttpPort": http_port,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "Plugins": [],
        **config,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([binary, str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(http_port, process=process)
        yield f"http://127.0.0.1:{http_port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
