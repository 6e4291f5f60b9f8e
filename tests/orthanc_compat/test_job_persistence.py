"""Jobs survive a restart: finished ones are listed again with their content; one a restart
interrupted runs again when its type can (an asynchronous C-STORE to a modality: here it
completes at the receiver after a SIGKILL of the server), else comes back failed; their
output files do not survive."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import requests

from pacs.core.ids import public_id
from pacs.core.index.db import Database
from pacs.core.index.job_records import JobRecord, JobRecords
from tests.conftest import free_port, start_server
from tests.e2e.helpers import modality_config
from tests.factories import make_series, to_bytes
from tests.orthanc_compat.job_waits import wait_job
from tests.orthanc_compat.slow_scp import SlowPickyScp


def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, data_dir=data_dir)
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        for ds in make_series(2, patient_id="PJ1", study_uid="1.9.1"):
            assert requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).ok
        study = public_id("PJ1", "1.9.1")
        archived = requests.post(
            f"{url}/studies/{study}/archive", json={"Asynchronous": True}, timeout=30
        ).json()["ID"]
        anonymized = requests.post(
            f"{url}/studies/{study}/anonymize", json={"Asynchronous": True}, timeout=30
        ).json()["ID"]
        dead = ["DEAD", "127.0.0.1", free_port()]  # nobody listens: the store job fails
        assert requests.put(f"{url}/modalities/dead", json=dead, timeout=30).ok
        failed = requests.post(
            f"{url}/modalities/dead/store",
            json={"Resources": [study], "Asynchronous": True},
            timeout=30,
        ).json()["ID"]
        before = {i: wait_job(url, i) for i in (archived, anonymized, failed)}
        assert before[failed]["State"] == "Failure"
        assert requests.get(f"{url}/jobs/{archived}/archive", timeout=30).status_code == 200
    finally:
        server.stop()
    # a job still running when the server stopped (as after a crash): its owner is gone
    crashed = f"{socket.gethostname()}:{server.process.pid}::crashed"
    records = JobRecords(Database(f"sqlite:///{data_dir / 'index.sqlite'}"), owner=crashed)
    records.save(
        JobRecord(
            id="running-1",
            type="Archive",
            state="Running",
            progress=40,
            content={"InstancesCount": 2},
            created_at=time.time(),
            started_at=time.time(),
            completed_at=0.0,
            error_code=0,
            error_description="Success",
            error_details="",
        )
    )
    records.database.close()
    server = start_server(tmp_path, data_dir=data_dir, name="again")
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        listed = requests.get(f"{url}/jobs", timeout=30).json()
        assert listed == [archived, anonymized, failed, "running-1"]
        expanded = {j["ID"]: j for j in requests.get(f"{url}/jobs?expand", timeout=30).json()}
        for job_id, job in before.items():
            after = expanded[job_id]
            for key in ("Content", "Type", "State", "Progress", "CreationTime", "ErrorCode"):
                assert after[key] == job[key], key
            assert after["CompletionTime"] == job["CompletionTime"]
        assert expanded[failed]["ErrorDetails"] == before[failed]["ErrorDetails"] != ""
        interrupted = expanded["running-1"]
        assert interrupted["State"] == "Failure" and interrupted["ErrorCode"] == -1
        assert interrupted["ErrorDetails"] == "interrupted by a server restart"
        assert interrupted["Content"] == {"InstancesCount": 2}
        assert "interrupted by a server restart" in server.log_text()
        # outputs are gone with the restart; a job kept with its recipe (an asynchronous
        # store) can be resubmitted, one without (a job record from before) cannot
        gone = requests.get(f"{url}/jobs/{archived}/archive", timeout=30)
        assert gone.status_code == 404 and gone.json()["OrthancStatus"] == 7
        again = requests.post(f"{url}/jobs/{failed}/resubmit", timeout=30)
        assert again.status_code == 200, again.text
        assert wait_job(url, failed)["State"] == "Failure"  # nobody listens still
        refused = requests.post(f"{url}/jobs/running-1/resubmit", timeout=30)
        assert refused.status_code == 400 and refused.json()["OrthancStatus"] == 6
        # deleting a restored job deletes its record
        assert requests.delete(f"{url}/jobs/{anonymized}", timeout=30).status_code == 200
    finally:
        server.stop()
    server = start_server(tmp_path, data_dir=data_dir, name="third")
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        assert requests.get(f"{url}/jobs", timeout=30).json() == [archived, failed, "running-1"]
    finally:
        server.stop()


def test_a_store_job_interrupted_by_a_crash_runs_again_after_the_restart(tmp_path: Path) -> None:
    scp = SlowPickyScp(delay=0.4, refuse=set())
    data_dir = tmp_path / "data"
    modality = modality_config("slow", "PICKY", scp.port)
    server = start_server(tmp_path, modality, data_dir=data_dir)
    datasets = make_series(5, patient_id="PJ2", study_uid="1.9.2", rows=4, columns=4)
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        for ds in datasets:
            assert requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).ok
        study = public_id("PJ2", "1.9.2")
        job_id = requests.post(
            f"{url}/modalities/slow/store",
            json={"Resources": [study], "Asynchronous": True},
            timeout=30,
        ).json()["ID"]
        deadline = time.monotonic() + 30
        while not scp.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scp.received, "the store job did not start"
        server.process.send_signal(signal.SIGKILL)  # a crash in the middle of the job
        server.process.wait(timeout=30)
        assert len(scp.received) < len(datasets)

        server = start_server(tmp_path, modality, data_dir=data_dir, name="again")
        url = f"http://127.0.0.1:{server.http_port}"
        job = wait_job(url, job_id)
        assert job["State"] == "Success", job
        assert job["Content"]["InstancesCount"] == 5
        assert job["Content"]["FailedInstancesCount"] == 0
        assert {str(ds.SOPInstanceUID) for ds in datasets} <= set(scp.received)
        assert "interrupted by a restart: runs again" in server.log_text()
    finally:
        server.stop()
        scp.stop()
