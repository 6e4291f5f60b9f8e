"""``POST /modalities/{name}/get``: C-GET SCU from a second instance of this server (a real
peer, its own C-GET SCP) into ours, synchronous and as a job."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.conftest import free_port, start_server, wait_for_port
from tests.factories import make_series, new_uid, to_bytes


@dataclass
class Pair:
    """Our server (``url``) and the peer holding the studies (``peer``)."""

    url: str
    peer: str
    studies: list[list[Dataset]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("dicom-get")
    peer_port = free_port()
    peer = start_server(folder, name="peer", dimse_port=peer_port)
    ours = start_server(folder, name="ours")
    try:
        for server in (peer, ours):
            wait_for_port(server.http_port, process=server.process)
        peer_url = f"http://127.0.0.1:{peer.http_port}"
        url = f"http://127.0.0.1:{ours.http_port}"
        studies = [
            make_series(3, patient_id="GET1", study_uid=new_uid(), rows=4, columns=4),
            make_series(2, patient_id="GET2", study_uid=new_uid(), rows=4, columns=4),
        ]
        for ds in [*studies[0], *studies[1]]:
            assert requests.post(f"{peer_url}/instances", data=to_bytes(ds), timeout=30).ok
        peer_config = {"AET": "PACS", "Host": "127.0.0.1", "Port": peer_port}
        assert requests.put(f"{url}/modalities/peer", json=peer_config, timeout=10).ok
        yield Pair(url, peer_url, studies)
    finally:
        ours.stop()
        peer.stop()


def _instances_of(url: str, study_uid: str) -> list[Dataset]:
    found = requests.post(
        f"{url}/tools/find",
        json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}},
        timeout=30,
    ).json()
    return [
        dcmread(io.BytesIO(requests.get(f"{url}/instances/{i}/file", timeout=30).content))
        for i in found
    ]


def test_get_a_study_synchronously(pair: Pair) -> None:
    study = pair.studies[0]
    uid = str(study[0].StudyInstanceUID)
    assert _instances_of(pair.url, uid) == []
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": uid}]}
    answer = requests.post(f"{pair.url}/modalities/peer/get", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert content["RemoteAet"] == "PACS" and content["Query"][0]["0020,000d"] == uid
    got = {str(ds.SOPInstanceUID): ds for ds in _instances_of(pair.url, uid)}
    assert set(got) == {str(ds.SOPInstanceUID) for ds in study}
    for ds in study:
        assert got[str(ds.SOPInstanceUID)].PixelData == ds.PixelData
    [found] = requests.post(
        f"{pair.url}/tools/lookup", data=str(study[0].SOPInstanceUID), timeout=10
    ).json()
    metadata = requests.get(f"{pair.url}{found['Path']}/metadata?expand", timeout=10).json()
    assert metadata["Origin"] == "DicomProtocol" and metadata["RemoteAET"] == "PACS"


def test_get_a_series_as_a_job(pair: Pair) -> None:
    study = pair.studies[1]
    body: dict[str, Any] = {
        "Level": "Series",
        "Resources": [
            {
                "StudyInstanceUID": str(study[0].StudyInstanceUID),
                "SeriesInstanceUID": str(study[0].SeriesInstanceUID),
            }
        ],
        "Asynchronous": True,
    }
    started = requests.post(f"{pair.url}/modalities/peer/get", json=body, timeout=60).json()
    deadline = time.monotonic() + 60
    while (job := requests.get(f"{pair.url}/jobs/{started['ID']}", timeout=10).json())[
        "State"
    ] not in ("Success", "Failure"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["State"] == "Success" and job["Type"] == "DicomGetScu", job
    assert len(_instances_of(pair.url, str(study[0].StudyInstanceUID))) == 2


def test_get_errors(pair: Pair) -> None:
    for body in ({}, {"Level": "Study"}, {"Level": "Galaxy", "Resources": []}, []):
        answer = requests.post(f"{pair.url}/modalities/peer/get", json=body, timeout=30)
        assert answer.status_code == 400, answer.text
    assert requests.post(f"{pair.url}/modalities/nobody/get", json={}).status_code == 404
    gone = {"AET": "GONE", "Host": "127.0.0.1", "Port": free_port()}
    assert requests.put(f"{pair.url}/modalities/gone", json=gone, timeout=10).ok
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}]}
    answer = requests.post(f"{pair.url}/modalities/gone/get", json=body, timeout=60)
    assert answer.status_code == 500 and answer.json()["OrthancStatus"] == 9
    assert "Connection refused" in answer.json()["Details"]
