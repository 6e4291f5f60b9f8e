"""No AI job lost or done twice across a SIGKILL of the AI worker or of the whole server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.ai_pipeline.test_pipeline_e2e import ai_config, chest, http_json, tiny_cxr, wait_for
from tests.conftest import RunningServer, start_server, wait_for_port
from tests.e2e.helpers import image_uids, store
from tests.factories import new_uid

pytestmark = pytest.mark.slow

SERIES = 24


def child_pids(pid: int) -> list[int]:
    """Direct children of a process, whichever of its threads started them (from /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def ai_worker_pid(server: RunningServer) -> int | None:
    """The AI worker process (the only spawned child in this configuration), if running."""
    for pid in child_pids(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            return pid
    return None


def send_studies(server: RunningServer, count: int) -> list[str]:
    studies = [new_uid() for _ in range(count)]
    for number, study in enumerate(studies):
        store(server.dimse_port, [chest(study, 0.9 if number % 2 else 0.1)])
    return studies


def assert_each_read_once(server: RunningServer, studies: list[str]) -> None:
    """Every series has one result and its study holds exactly one SR."""

    def all_done() -> bool:
        counts = http_json(server, "/ai/jobs")["counts"]
        return counts.get("done", 0) == len(studies) and not counts.get("pending")

    wait_for(all_done, timeout=120)
    for study in studies:
        results = http_json(server, f"/ai/studies/{study}")
        assert len(results) == 1, study
        uids = image_uids(server.dimse_port, StudyInstanceUID=study)
        assert len(uids) == 2 and results[0]["sr_sop_uid"] in uids, (study, uids, results)


def test_sigkill_of_the_ai_worker(tmp_path: Path) -> None:
    models = tmp_path / "models"
    tiny_cxr(models / "tiny-cxr")
    server = start_server(
        tmp_path,
        extra_config=ai_config(models, stable_seconds=0.2, lease_seconds=2.0, jobs_per_claim=2),
    )
    try:
        studies = send_studies(server, SERIES // 2)
        wait_for(lambda: http_json(server, "/ai/jobs")["counts"].get("done"))
        victim = ai_worker_pid(server)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        studies += send_studies(server, SERIES // 2)
        wait_for(lambda: ai_worker_pid(server) not in (None, victim), timeout=30)  # restarted
        assert_each_read_once(server, studies)
        assert "restarting it" in server.log_text()
    finally:
        server.stop()


def test_sigkill_of_the_server(tmp_path: Path) -> None:
    models = tmp_path / "models"
    tiny_cxr(models / "tiny-cxr")
    config = ai_config(models, stable_seconds=0.5, lease_seconds=2.0, jobs_per_claim=2)
    server = start_server(tmp_path, extra_config=config)
    try:
        studies = send_studies(server, SERIES)
        pids = [server.process.pid, *child_pids(server.process.pid)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        server.process.wait()
    finally:
        server.stop()
    time.sleep(0.5)
    restarted = start_server(
        tmp_path,
        extra_config=config,
        name="restarted",
        data_dir=server.data_dir,
        dimse_port=server.dimse_port,
    )
    wait_for_port(restarted.http_port, process=restarted.process)
    try:
        assert_each_read_once(restarted, studies)
    finally:
        restarted.stop()
