"""Archives and media as jobs (``"Asynchronous": true``), downloaded from
``GET /jobs/{id}/archive``; their outputs' lifetime; bad requests."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyorthanc
import pytest
import requests
from pydicom import dcmread

from orthanc_compat.jobs import Job, JobOutput, JobRegistry
from pacs.core.ids import public_id
from tests.conftest import RunningServer, wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_series, to_bytes
from tests.orthanc_compat.job_waits import wait_job

CONTENT_KEYS = {
    "ArchiveSize",
    "ArchiveSizeMB",
    "Description",
    "InstancesCount",
    "UncompressedSize",
    "UncompressedSizeMB",
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    with serve(tmp_path_factory, "zipjobs") as server:
        wait_for_port(server.http_port, process=server.process)
        base = f"http://127.0.0.1:{server.http_port}"
        for ds in [
            *make_series(3, patient_id="AJ1", study_uid="1.8.1", series_uid="1.8.1.1"),
            *make_series(2, patient_id="AJ1", study_uid="1.8.1", series_uid="1.8.1.2"),
            *make_series(1, patient_id="AJ2", study_uid="1.8.2", series_uid="1.8.2.1"),
        ]:
            assert requests.post(f"{base}/instances", data=to_bytes(ds), timeout=30).ok
        yield server, base


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return {n: bundle.read(n) for n in bundle.namelist()}


def sop_uids(data: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert bundle.testzip() is None
        return {
            str(dcmread(io.BytesIO(bundle.read(n))).SOPInstanceUID)
            for n in bundle.namelist()
            if n != "DICOMDIR"
        }


def test_study_archive_job_with_pyorthanc(running: tuple[RunningServer, str]) -> None:
    server, url = running
    client = pyorthanc.Orthanc(url)
    study = public_id("AJ1", "1.8.1")
    started = client.post_studies_id_archive(study, json={"Asynchronous": True})
    assert isinstance(started, dict) and set(started) == {"ID", "Path"}
    job = pyorthanc.Job(started["ID"], client)
    job.wait_until_completion()
    assert job.state == pyorthanc.jobs.State.success
    shape = requests.get(f"{url}/jobs/{started['ID']}", timeout=30).json()
    assert shape["Type"] == "Archive" and shape["Progress"] == 100
    content = shape["Content"]
    assert set(content) == CONTENT_KEYS and content["Description"] == "REST API"
    assert content["InstancesCount"] == 5
    data = client.get_jobs_id_key(started["ID"], "archive")
    assert isinstance(data, bytes) and int(content["ArchiveSize"]) == len(data)
    sync = requests.get(f"{url}/studies/{study}/archive", timeout=30).content
    assert members(data) == members(sync)  # the same writer: the same names and bytes
    assert int(content["UncompressedSize"]) == sum(len(b) for b in members(data).values())
    response = requests.get(f"{url}/jobs/{started['ID']}/archive", timeout=30)
    assert response.headers["Content-Type"] == "application/zip"
    assert 'filename="archive.zip"' in response.headers["Content-Disposition"]
    files = list((server.data_dir / "orthanc-jobs").iterdir())
    assert [f.name for f in files] == [f"{started['ID']}-archive"]
    # deleting the job deletes its file
    assert requests.delete(f"{url}/jobs/{started['ID']}", timeout=30).status_code == 200
    assert not files[0].exists()
    gone = requests.get(f"{url}/jobs/{started['ID']}/archive", timeout=30)
    assert gone.status_code == 404 and gone.json()["OrthancStatus"] == 7


def test_media_and_create_archive_jobs(running: tuple[RunningServer, str]) -> None:
    _, url = running
    series = public_id("AJ1", "1.8.1", "1.8.1.2")
    started = requests.post(
        f"{url}/series/{series}/media", json={"Asynchronous": True}, timeout=30
    ).json()
    job = wait_job(url, started["ID"])
    assert job["State"] == "Success" and job["Type"] == "Media"
    assert job["Content"]["InstancesCount"] == 2
    data = requests.get(f"{url}/jobs/{started['ID']}/archive", timeout=30).content
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        assert bundle.namelist() == ["DICOMDIR", "IMAGES/IM0", "IMAGES/IM1"]
    other = public_id("AJ2", "1.8.2")
    body = {"Resources": [series, other], "Synchronous": False, "Filename": "two.zip"}
    started = requests.post(f"{url}/tools/create-archive", json=body, timeout=30).json()
    job = wait_job(url, started["ID"])
    assert job["Type"] == "Archive" and job["Content"]["InstancesCount"] == 3
    response = requests.get(f"{url}/jobs/{started['ID']}/archive", timeout=30)
    assert 'filename="two.zip"' in response.headers["Content-Disposition"]
    assert len(sop_uids(response.content)) == 3
    started = requests.post(
        f"{url}/tools/create-media", json={"Resources": [other], "Asynchronous": True}, timeout=30
    ).json()
    job = wait_job(url, started["ID"])
    assert job["Type"] == "Media" and job["Content"]["InstancesCount"] == 1
    # POST without Asynchronous streams at once, as GET
    patient = public_id("AJ1")
    response = requests.post(f"{url}/patients/{patient}/archive", timeout=30)
    assert response.headers["Content-Type"] == "application/zip"
    assert len(sop_uids(response.content)) == 5


def test_bad_archive_requests(running: tuple[RunningServer, str]) -> None:
    _, url = running
    study = public_id("AJ1", "1.8.1")
    for body in (
        b"junk",
        b"[1]",
        b'{"Transcode": "1.2.840.10008.1.2.4.50"}',
        b'{"Nonsense": 1}',
        b'{"Filename": "a\\"b.zip"}',
    ):
        response = requests.post(f"{url}/studies/{study}/archive", data=body, timeout=30)
        assert response.status_code == 400, body
        assert response.json()["HttpStatus"] == 400
    unknown = requests.post(
        f"{url}/studies/{public_id('nobody', '9')}/media", json={"Asynchronous": True}, timeout=30
    )
    assert unknown.status_code == 404 and unknown.json()["OrthancStatus"] == 17
    unknown = requests.post(
        f"{url}/tools/create-media",
        json={"Resources": [public_id("nobody")], "Asynchronous": True},
        timeout=30,
    )
    assert unknown.status_code == 404
    for bad in ([], {"Resources": "x"}, {"Asynchronous": True}):
        response = requests.post(f"{url}/tools/create-archive", json=bad, timeout=30)
        assert response.status_code == 400, bad
    job_id = requests.post(
        f"{url}/studies/{study}/archive", json={"Asynchronous": True}, timeout=30
    ).json()["ID"]
    wait_job(url, job_id)
    missing = requests.get(f"{url}/jobs/{job_id}/nothing", timeout=30)
    assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 7


def test_outputs_expire_and_are_cleared_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "old-archive").write_bytes(b"left by a previous run")
    registry = JobRegistry(folder, ttl=3600)
    assert list(folder.iterdir()) == []  # cleared at start

    def work(job: Job) -> None:
        path = registry.output_path(job, "archive")
        path.write_bytes(b"zip")
        job.outputs["archive"] = JobOutput(path, "application/zip", "archive.zip")

    job = registry.submit("Archive", {}, work)
    assert job.done.wait(10) and job.state == "Success"
    path = registry.output_path(job, "archive")
    assert path.exists()
    assert registry.sweep(job.completed + 3599) == 0 and path.exists()
    assert registry.sweep(job.completed + 3601) == 1 and not path.exists()
    assert job.outputs == {} and registry.get(job.id) is job  # the job stays listed
