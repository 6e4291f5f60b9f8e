"""Several server processes sharing the DICOM port (``[dimse] workers``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.e2e.helpers import image_uids, store
from tests.factories import make_series, new_uid


def _worker_pids(main_pid: int) -> list[int]:
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.slow
def test_workers_share_the_port_and_die_with_the_main_process(tmp_path: Path) -> None:
    server = start_server(tmp_path, dimse_options="workers = 2")
    try:
        time.sleep(2)  # let the worker bind too; a new worker must not disturb stores
        study = new_uid()
        batches = [make_series(10, study_uid=study) for _ in range(4)]
        results: list[list[int]] = []
        threads = [
            threading.Thread(target=lambda b=batch: results.append(store(server.dimse_port, b)))
            for batch in batches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert results and all(status == 0 for batch in results for status in batch)
        assert len(image_uids(server.dimse_port, StudyInstanceUID=study)) == 40
        assert "removed" not in server.log_text()
        workers = _worker_pids(server.process.pid)
        assert workers, "the worker process is missing"
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
            time.sleep(0.2)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        assert alive == [], "a worker outlived the main process"
    finally:
        server.stop()
