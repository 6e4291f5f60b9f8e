"""Modification jobs (``Asynchronous``), bulk anonymize/modify, and the job controls: pause,
resume, cancel, resubmit, delete."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pyorthanc
import pytest
import requests
from pydicom import dcmread

from pacs.core.ids import public_id
from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, make_series, to_bytes
from tests.orthanc_compat.job_waits import wait_job

BIG = 240  # instances of the study used to catch a job while it runs


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory, "jobs") as server:
        wait_for_port(server.http_port, process=server.process)
        base = f"http://127.0.0.1:{server.http_port}"
        series = [
            *make_series(2, patient_id="JOB1", study_uid="1.7.1", series_uid="1.7.1.1"),
            *make_series(1, patient_id="JOB1", study_uid="1.7.1", series_uid="1.7.1.2"),
            make_image(patient_id="JOB2", study_uid="1.7.2"),
            *make_series(BIG, patient_id="JOB3", study_uid="1.7.3", rows=4, columns=4),
        ]
        for ds in series:
            assert requests.post(f"{base}/instances", data=to_bytes(ds), timeout=30).ok
        yield base


def study_files(url: str, study_id: str) -> list[Any]:
    ids = [i["ID"] for i in requests.get(f"{url}/studies/{study_id}/instances").json()]
    return [dcmread(io.BytesIO(requests.get(f"{url}/instances/{i}/file").content)) for i in ids]


def test_asynchronous_anonymize_is_a_job(url: str) -> None:
    study = public_id("JOB1", "1.7.1")
    answer = requests.post(f"{url}/studies/{study}/anonymize", json={"Asynchronous": True})
    assert answer.status_code == 200
    started = answer.json()
    assert set(started) == {"ID", "Path"} and started["Path"] == f"/jobs/{started['ID']}"
    job = wait_job(url, started["ID"])
    assert job["State"] == "Success" and job["Type"] == "ResourceModification"
    assert job["Progress"] == 100 and job["ErrorCode"] == 0
    content = job["Content"]
    assert set(content) == {
        "Description",
        "FailedInstancesCount",
        "ID",
        "InstancesCount",
        "IsAnonymization",
        "Path",
        "PatientID",
        "Type",
    }
    assert content["InstancesCount"] == 3 and content["IsAnonymization"] is True
    assert content["Type"] == "Study" and content["Path"] == f"/studies/{content['ID']}"
    files = study_files(url, content["ID"])
    assert len(files) == 3 and {f.PatientIdentityRemoved for f in files} == {"YES"}
    assert started["ID"] in requests.get(f"{url}/jobs").json()


def test_synchronous_modify_is_a_job_too(url: str) -> None:
    series = public_id("JOB1", "1.7.1", "1.7.1.1")
    body = {"Replace": {"SeriesDescription": "SYNC"}}
    answer = requests.post(f"{url}/series/{series}/modify", json=body).json()
    assert answer["Type"] == "Series" and answer["IsAnonymization"] is False
    jobs = requests.get(f"{url}/jobs?expand").json()
    assert any(j["Content"].get("ID") == answer["ID"] for j in jobs)


def test_pyorthanc_jobs(url: str) -> None:
    orthanc = pyorthanc.Orthanc(url)
    study = pyorthanc.Study(public_id("JOB2", "1.7.2"), orthanc)
    job = study.modify_as_job(replace={"StudyDescription": "BY JOB"}, force=True)
    job.wait_until_completion(time_interval=0.1)
    assert job.state == pyorthanc.jobs.State.success
    new_id = job.content["ID"]
    assert pyorthanc.Study(new_id, orthanc).description == "BY JOB"


def test_bulk_modify_and_anonymize(url: str) -> None:
    series = [public_id("JOB1", "1.7.1", uid) for uid in ("1.7.1.1", "1.7.1.2")]
    body = {"Resources": series, "Level": "Series", "Replace": {"SeriesDescription": "BULK"}}
    content = requests.post(f"{url}/tools/bulk-modify", json=body).json()
    assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
    types = [r["Type"] for r in content["Resources"]]
    assert types == ["Instance"] * 3 + ["Series"] * 2 + ["Study", "Patient"]
    assert content["Resources"][-2]["ID"] == public_id("JOB1", "1.7.1")  # same study
    for resource in content["Resources"][3:5]:
        shown = requests.get(f"{url}{resource['Path']}").json()
        assert shown["MainDicomTags"]["SeriesDescription"] == "BULK"
    # an instance below two of the resources is rewritten once; asynchronous
    both = [public_id("JOB1", "1.7.1"), series[0], public_id("JOB2", "1.7.2")]
    expected = sum(len(requests.get(f"{url}/studies/{s}/instances").json()) for s in both[::2])
    started = requests.post(
        f"{url}/tools/bulk-anonymize", json={"Resources": both, "Asynchronous": True}
    ).json()
    job = wait_job(url, started["ID"])
    assert job["State"] == "Success", job
    created = job["Content"]["Resources"]
    assert job["Content"]["InstancesCount"] == expected
    assert [r["Type"] for r in created].count("Study") == 2
    assert [r["Type"] for r in created].count("Patient") == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"Resources": []},
        {"Resources": "x"},
        {"Resources": [1]},
        {"Resources": ["00000000-00000000-00000000-00000000-00000000"]},
        {"Resources": ["x"], "Level": "Galaxy"},
        {"Resources": ["x"], "Asynchronous": "yes"},
    ],
)
def test_bulk_bad_bodies(url: str, body: dict[str, Any]) -> None:
    for route in ("bulk-modify", "bulk-anonymize"):
        answer = requests.post(f"{url}/tools/{route}", json=body)
        assert answer.status_code in (400, 404), answer.text
        assert answer.json()["HttpStatus"] == answer.status_code


def test_pause_resume_cancel_resubmit_delete(url: str) -> None:
    study = public_id("JOB3", "1.7.3")
    body = {"Replace": {"StudyDescription": "PAUSED"}, "Asynchronous": True}
    job_id = requests.post(f"{url}/studies/{study}/modify", json=body).json()["ID"]
    assert requests.post(f"{url}/jobs/{job_id}/pause").json() == {}
    paused = wait_job(url, job_id, ("Paused", "Success"))
    assert paused["State"] == "Paused", "the job ended before it could be paused"
    time.sleep(0.5)  # the instances already being written finish; then nothing moves
    before = requests.get(f"{url}/jobs/{job_id}").json()
    time.sleep(0.7)
    still = requests.get(f"{url}/jobs/{job_id}").json()
    assert still["State"] == "Paused" and still["Progress"] == before["Progress"] < 100
    # not finished: cannot be deleted nor resubmitted
    assert requests.delete(f"{url}/jobs/{job_id}").status_code == 400
    assert requests.post(f"{url}/jobs/{job_id}/resubmit").status_code == 400
    assert requests.post(f"{url}/jobs/{job_id}/resume").json() == {}
    assert requests.post(f"{url}/jobs/{job_id}/cancel").json() == {}
    cancelled = wait_job(url, job_id)
    assert cancelled["State"] == "Failure" and cancelled["ErrorCode"] == 14
    assert requests.post(f"{url}/jobs/{job_id}/resume").status_code == 400
    assert requests.post(f"{url}/jobs/{job_id}/resubmit").json() == {}
    done = wait_job(url, job_id)
    assert done["State"] == "Success" and done["Content"]["InstancesCount"] == BIG
    assert requests.post(f"{url}/jobs/{job_id}/resubmit").status_code == 400
    assert requests.post(f"{url}/jobs/{job_id}/pause").json() == {}  # finished: as is
    assert requests.get(f"{url}/jobs/{job_id}").json()["State"] == "Success"
    assert requests.get(f"{url}/jobs/{job_id}/archive").status_code == 404  # no output
    assert requests.delete(f"{url}/jobs/{job_id}").json() == {}
    assert requests.get(f"{url}/jobs/{job_id}").status_code == 404
    assert job_id not in requests.get(f"{url}/jobs").json()
    assert requests.post(f"{url}/jobs/{job_id}/pause").status_code == 404
