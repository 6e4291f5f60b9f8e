"""Waiting for an Orthanc-API job to reach a state, for the tests of ``/jobs``."""

from __future__ import annotations

import time
from typing import Any

import requests

FINISHED = ("Success", "Failure")


def wait_job(url: str, job_id: str, states: tuple[str, ...] = FINISHED) -> Any:
    """``GET /jobs/{id}`` until its ``State`` is one of ``states`` (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/jobs/{job_id}", timeout=30).json()
        if job["State"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['State']}")
