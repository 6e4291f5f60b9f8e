"""Several servers on one index: at start-up a server fails only the unfinished job records
of its host's processes that are gone (or of an earlier registry in its own process), and
other hosts' records only once they are older than a day. Real index, both backends; the
other "servers" are real child processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orthanc_compat.jobs import INTERRUPTED, JobRegistry
from pacs.core.archive import Archive
from pacs.core.index.job_records import STALE_AFTER, JobRecord, JobRecords
from pacs.core.process_owner import owner_gone, process_start

_PRINT_OWNER = (
    "import sys; from pacs.core.process_owner import new_owner; "
    "print(new_owner(), flush=True); sys.stdin.read()"
)


def _child_owner() -> tuple[subprocess.Popen[str], str]:
    """A child process (another server) and its owner; it runs until its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", _PRINT_OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def _end(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)


@pytest.fixture
def live_child() -> Iterator[str]:
    child, owner = _child_owner()
    try:
        yield owner
    finally:
        _end(child)


def _running(records: JobRecords, job_id: str, created: float) -> None:
    records.save(
        JobRecord(job_id, "Archive", "Running", 40, {}, created, created, 0.0, 0, "Success", "")
    )


def test_start_up_fails_only_the_jobs_of_gone_servers(
    archive: Archive, live_child: str, tmp_path: Path
) -> None:
    database = archive.index.database
    dead_child, dead = _child_owner()
    _end(dead_child)
    host, pid, start, _ = live_child.split(":")
    assert start == process_start(int(pid)) != ""
    now = time.time()
    owners = {
        "alive": (live_child, now),  # another server of this host, still running
        "dead": (dead, now),  # a server of this host that stopped
        "reused-pid": (f"{host}:{pid}:1:0", now),  # its pid now runs another process
        "elsewhere": ("other-host:42:7:abc", now - STALE_AFTER + 600),
        "elsewhere-stale": ("other-host:42:7:abc", now - STALE_AFTER - 600),
        "same-process": (None, now),  # an earlier registry of this very process
    }
    for job_id, (owner, created) in owners.items():
        _running(JobRecords(database, owner=owner), job_id, created)

    registry = JobRegistry(tmp_path / "jobs", records=JobRecords(database))
    states = {job_id: registry.get(job_id).state for job_id in owners}
    assert states == {
        "alive": "Running",
        "dead": "Failure",
        "reused-pid": "Failure",
        "elsewhere": "Running",
        "elsewhere-stale": "Failure",
        "same-process": "Failure",
    }
    failed = registry.get("dead")
    assert failed.error_details == INTERRUPTED and failed.completed >= now
    assert registry.get("alive").completed == 0.0


def test_an_unreadable_owner_is_gone_another_hosts_unknown() -> None:
    host = socket.gethostname()
    assert owner_gone("", f"{host}:1:2:x") is True  # unreadable: gone
    assert owner_gone("elsewhere:1:2:x", f"{host}:1:2:x") is None
    assert owner_gone(f"{host}:1:2:x", f"{host}:1:2:x") is False
