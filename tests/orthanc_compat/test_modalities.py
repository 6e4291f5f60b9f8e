"""``/modalities``, ``/queries`` and ``/jobs`` with a real Orthanc 1.10.1 as the remote PACS
(skipped where Orthanc is absent) and DCMTK's ``storescp`` as a plain storage remote."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyorthanc
import pytest
import requests
from orthanc_api_client import OrthancApiClient

from tests.conftest import RunningServer, free_port, start_server, wait_for_port
from tests.e2e.helpers import dcmtk_tool, modality_config
from tests.factories import make_series, new_uid, to_bytes
from tests.orthanc_compat.job_waits import wait_job
from tests.orthanc_compat.real_orthanc import running_orthanc
from tests.orthanc_compat.slow_scp import SlowPickyScp

ORTHANC_AE = "ORTHANC"


@dataclass
class Net:
    """Our server and a real Orthanc that know each other."""

    server: RunningServer
    url: str
    orthanc: str
    orthanc_dicom_port: int
    study_id: str  # a study of ours (3 instances)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    folder = tmp_path_factory.mktemp("modalities")
    our_port, orthanc_port = free_port(), free_port()
    remote = running_orthanc(
        folder,
        Name="remote",
        DicomAet=ORTHANC_AE,
        DicomPort=orthanc_port,
        DicomAlwaysAllowEcho=True,
        DicomAlwaysAllowStore=True,
        DicomAlwaysAllowFind=True,
        DicomAlwaysAllowMove=True,
        DicomModalities={"pacs": ["PACS", "127.0.0.1", our_port]},
    )
    with remote as orthanc_url:
        server = start_server(
            folder,
            modality_config("conf", "CONFAE", free_port()),  # configured, nobody listening
            name="ours",
            dimse_port=our_port,
        )
        try:
            wait_for_port(server.http_port, process=server.process)
            url = f"http://127.0.0.1:{server.http_port}"
            ours = make_series(3, patient_id="OURS1", study_uid=new_uid(), rows=4, columns=4)
            for ds in ours:
                assert requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).ok
            [study_id] = requests.get(f"{url}/studies", timeout=10).json()
            answer = requests.put(
                f"{url}/modalities/orthanc",
                json={"AET": ORTHANC_AE, "Host": "127.0.0.1", "Port": orthanc_port},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            yield Net(server, url, orthanc_url, orthanc_port, study_id)
        finally:
            server.stop()


def _error(response: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["HttpStatus"] == status and body["OrthancStatus"] == code
    assert {"HttpError", "Message", "Method", "OrthancError", "Uri"} <= set(body)
    return body


def test_list_and_configuration_shapes_match_orthanc(net: Net) -> None:
    body = ["STATION", "10.0.0.5", 104, "GE"]
    assert requests.put(f"{net.url}/modalities/shape", json=body, timeout=10).ok
    assert requests.put(f"{net.orthanc}/modalities/shape", json=body, timeout=10).ok
    ours = requests.get(f"{net.url}/modalities?expand", timeout=10).json()
    theirs = requests.get(f"{net.orthanc}/modalities?expand", timeout=10).json()
    assert ours["shape"] == theirs["shape"]
    assert ours["shape"]["Manufacturer"] == "GE" and ours["shape"]["Port"] == 104
    assert {"conf", "orthanc", "shape"} <= set(
        requests.get(f"{net.url}/modalities", timeout=10).json()
    )
    config = requests.get(f"{net.url}/modalities/shape/configuration", timeout=10).json()
    assert config == theirs["shape"]
    assert "echo" in requests.get(f"{net.url}/modalities/shape", timeout=10).json()
    assert requests.delete(f"{net.url}/modalities/shape", timeout=10).ok
    assert "shape" not in requests.get(f"{net.url}/modalities", timeout=10).json()
    _error(requests.delete(f"{net.url}/modalities/shape", timeout=10), 404, 7)
    _error(requests.delete(f"{net.url}/modalities/conf", timeout=10), 400, 8)  # TOML-only


def test_bad_bodies_and_unknown_modalities(net: Net) -> None:
    for body in ({"AET": "X"}, ["X", "h"], {"AET": "X", "Host": "h", "Port": "x"}):
        ours = _error(requests.put(f"{net.url}/modalities/bad", json=body, timeout=10), 400, 15)
        theirs = requests.put(f"{net.orthanc}/modalities/bad", json=body, timeout=10)
        assert theirs.status_code == 400 and theirs.json()["OrthancStatus"] == 15
    assert ours["Uri"] == "/modalities/bad" and ours["Method"] == "PUT"
    _error(requests.put(f"{net.url}/modalities/bad", data=b"{nope", timeout=10), 400, 15)
    _error(
        requests.put(
            f"{net.url}/modalities/bad", json={"AET": "X" * 17, "Host": "h", "Port": 1}, timeout=10
        ),
        400,
        8,
    )
    _error(requests.post(f"{net.url}/modalities/nope/echo", timeout=10), 404, 7)
    _error(requests.get(f"{net.url}/modalities/nope", timeout=10), 404, 7)
    _error(
        requests.post(f"{net.url}/modalities/orthanc/store", json=["nothere"], timeout=10), 400, 15
    )
    missing = "0123abcd-0123abcd-0123abcd-0123abcd-0123abcd"
    _error(
        requests.post(f"{net.url}/modalities/orthanc/store", json=[missing], timeout=10), 404, 17
    )
    _error(requests.post(f"{net.url}/modalities/orthanc/query", json=[1], timeout=10), 400, 15)
    _error(
        requests.post(f"{net.url}/modalities/orthanc/query", json={"Level": "Bogus"}, timeout=10),
        400,
        3,
    )
    _error(requests.get(f"{net.url}/jobs/nope", timeout=10), 404, 7)
    _error(requests.get(f"{net.url}/queries/nope/answers", timeout=10), 404, 7)


def test_echo_and_unreachable_remote(net: Net) -> None:
    answer = requests.post(f"{net.url}/modalities/orthanc/echo", timeout=30)
    assert answer.status_code == 200 and answer.json() == {}
    ours = _error(requests.post(f"{net.url}/modalities/conf/echo", timeout=30), 500, 9)
    assert ours["Details"].startswith('DicomAssociation - connecting to AET "CONFAE"')
    assert "Connection refused" in ours["Details"]
    for operation, body in (
        ("query", {"Level": "Study", "Query": {}}),
        ("move", {"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2.3"}]}),
    ):
        failed = requests.post(f"{net.url}/modalities/conf/{operation}", json=body, timeout=30)
        assert "DicomAssociation" in _error(failed, 500, 9)["Details"]
    port = free_port()
    requests.put(f"{net.orthanc}/modalities/conf", json=["CONFAE", "127.0.0.1", port], timeout=10)
    theirs = requests.post(f"{net.orthanc}/modalities/conf/echo", timeout=30).json()
    assert {k: v for k, v in ours.items() if k not in ("Details", "Uri")} == {
        k: v for k, v in theirs.items() if k not in ("Details", "Uri")
    }


def test_store_synchronous_and_as_a_job(net: Net) -> None:
    answer = requests.post(f"{net.url}/modalities/orthanc/store", json=net.study_id, timeout=60)
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
    assert content["RemoteAet"] == ORTHANC_AE and content["ParentResources"] == [net.study_id]
    # Orthanc's ids are the same on both sides: the study arrived whole.
    study = requests.get(f"{net.orthanc}/studies/{net.study_id}", timeout=10).json()
    assert len(study["Series"]) == 1
    assert (
        len(requests.get(f"{net.orthanc}/studies/{net.study_id}/instances", timeout=10).json()) == 3
    )
    requests.delete(f"{net.orthanc}/studies/{net.study_id}", timeout=10)

    started = requests.post(
        f"{net.url}/modalities/orthanc/store",
        json={"Resources": [net.study_id], "Asynchronous": True},
        timeout=60,
    ).json()
    assert started["Path"] == f"/jobs/{started['ID']}"
    job = wait_job(net.url, started["ID"])
    assert job["State"] == "Success" and job["Type"] == "DicomModalityStore"
    assert (
        job["Progress"] == 100 and job["ErrorCode"] == 0 and job["Content"]["InstancesCount"] == 3
    )
    assert {"CreationTime", "CompletionTime", "ErrorDescription", "Timestamp"} <= set(job)
    assert started["ID"] in requests.get(f"{net.url}/jobs", timeout=10).json()
    assert requests.get(f"{net.orthanc}/studies/{net.study_id}", timeout=10).ok
    assert requests.post(f"{net.url}/jobs/{started['ID']}/cancel", timeout=10).ok  # finished: no-op

    failed = requests.post(
        f"{net.url}/modalities/conf/store",
        json={"Resources": [net.study_id], "Synchronous": False},
        timeout=60,
    ).json()
    job = wait_job(net.url, failed["ID"])
    assert job["State"] == "Failure" and job["ErrorCode"] == 9
    assert job["ErrorDetails"].startswith('DicomAssociation - connecting to AET "CONFAE"')
    _error(
        requests.post(f"{net.url}/modalities/conf/store", json=[net.study_id], timeout=60), 500, 9
    )


def _remote_study(net: Net) -> str:
    """A study stored in Orthanc only; its StudyInstanceUID."""
    study_uid = new_uid()
    for ds in make_series(
        2, patient_id="REMOTE1", study_uid=study_uid, rows=4, columns=4, accession="RACC"
    ):
        assert requests.post(f"{net.orthanc}/instances", data=to_bytes(ds), timeout=30).ok
    return study_uid


def test_query_answers_and_retrieve(net: Net) -> None:
    study_uid = _remote_study(net)
    started = requests.post(
        f"{net.url}/modalities/orthanc/query",
        json={"Level": "Study", "Query": {"PatientID": "REMOTE*"}},
        timeout=30,
    )
    assert started.status_code == 200, started.text
    query_id = started.json()["ID"]
    assert started.json()["Path"] == f"/queries/{query_id}"
    assert query_id in requests.get(f"{net.url}/queries", timeout=10).json()
    assert requests.get(f"{net.url}/queries/{query_id}/answers", timeout=10).json() == ["0"]
    content = requests.get(f"{net.url}/queries/{query_id}/answers/0/content", timeout=10).json()
    assert content["0020,000d"] == {
        "Name": "StudyInstanceUID",
        "Type": "String",
        "Value": study_uid,
    }
    simplified = requests.get(
        f"{net.url}/queries/{query_id}/answers?expand&simplify", timeout=10
    ).json()
    assert simplified[0]["AccessionNumber"] == "RACC" and simplified[0]["PatientID"] == "REMOTE1"
    assert requests.get(f"{net.url}/queries/{query_id}/level", timeout=10).text == "Study"
    assert requests.get(f"{net.url}/queries/{query_id}/modality", timeout=10).text == "orthanc"
    asked = requests.get(f"{net.url}/queries/{query_id}/query?simplify", timeout=10).json()
    assert asked == {"PatientID": "REMOTE*"}

    # The same query on Orthanc (against itself) gives the same answer keys.
    requests.put(
        f"{net.orthanc}/modalities/self",
        json=[ORTHANC_AE, "127.0.0.1", net.orthanc_dicom_port],
        timeout=10,
    )
    theirs = requests.post(
        f"{net.orthanc}/modalities/self/query",
        json={"Level": "Study", "Query": {"PatientID": "REMOTE*"}},
        timeout=30,
    ).json()["ID"]
    their_content = requests.get(
        f"{net.orthanc}/queries/{theirs}/answers/0/content", timeout=10
    ).json()
    assert set(their_content) == set(content)
    for level in ("Patient", "Study", "Series", "Instance"):  # the keys Orthanc adds
        body = {"Level": level, "Query": {}}
        key_sets = []
        for base, name in ((net.url, "orthanc"), (net.orthanc, "self")):
            ran = requests.post(f"{base}/modalities/{name}/query", json=body, timeout=30).json()
            answers = requests.get(f"{base}/queries/{ran['ID']}/answers?expand", timeout=10)
            key_sets.append({key for answer in answers.json() for key in answer})
        # Orthanc asks itself for Media Storage SOP Instance UID (0002,0003) at instance
        # level, a File Meta attribute in a C-FIND identifier: not copied.
        assert key_sets[0] == key_sets[1] - {"0002,0003"}, level

    moved = requests.post(f"{net.url}/queries/{query_id}/answers/0/retrieve", data=b"", timeout=60)
    assert moved.status_code == 200, moved.text
    assert moved.json()["Query"][0]["0020,000d"] == study_uid
    assert moved.json()["RemoteAet"] == ORTHANC_AE
    [found] = requests.post(f"{net.url}/tools/lookup", data=study_uid, timeout=10).json()
    assert len(requests.get(f"{net.url}/studies/{found['ID']}/instances", timeout=10).json()) == 2

    requests.delete(f"{net.url}/studies/{found['ID']}", timeout=10)
    job = requests.post(
        f"{net.url}/queries/{query_id}/retrieve", json={"Synchronous": False}, timeout=60
    ).json()
    assert wait_job(net.url, job["ID"])["State"] == "Success"
    assert requests.post(f"{net.url}/tools/lookup", data=study_uid, timeout=10).json()
    assert requests.delete(f"{net.url}/queries/{query_id}", timeout=10).ok
    _error(requests.get(f"{net.url}/queries/{query_id}", timeout=10), 404, 7)


def test_move_from_the_remote(net: Net) -> None:
    study_uid = _remote_study(net)
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}]}
    answer = requests.post(f"{net.url}/modalities/orthanc/move", json=body, timeout=60)
    assert answer.status_code == 200 and answer.json() == {}, answer.text
    assert requests.post(f"{net.url}/tools/lookup", data=study_uid, timeout=10).json()
    refused = requests.post(
        f"{net.url}/modalities/orthanc/move", json={**body, "TargetAet": "NOBODY"}, timeout=60
    )
    ours = _error(refused, 422, 9)
    assert ours["Details"].startswith(f'C-MOVE SCU to AET "{ORTHANC_AE}" has failed')


def test_get_from_the_remote(net: Net) -> None:
    """C-GET SCU against Orthanc 1.10.1's C-GET SCP."""
    study_uid = _remote_study(net)
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": study_uid}]}
    answer = requests.post(f"{net.url}/modalities/orthanc/get", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["RemoteAet"] == ORTHANC_AE
    [found] = requests.post(f"{net.url}/tools/lookup", data=study_uid, timeout=10).json()
    instances = requests.get(f"{net.url}{found['Path']}/instances", timeout=10).json()
    assert len(instances) == 2


def test_the_dimse_door_moves_to_a_modality_added_over_rest(net: Net) -> None:
    """Orthanc asks us (C-MOVE) to send our study to ORTHANC, known to us only over REST."""
    requests.delete(f"{net.orthanc}/studies/{net.study_id}", timeout=10)
    answer = requests.post(
        f"{net.orthanc}/modalities/pacs/move",
        json={
            "Level": "Study",
            "Resources": [{"StudyInstanceUID": _study_uid(net)}],
            "TargetAet": ORTHANC_AE,
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert requests.get(f"{net.orthanc}/studies/{net.study_id}", timeout=10).ok


def _study_uid(net: Net) -> str:
    study = requests.get(f"{net.url}/studies/{net.study_id}", timeout=10).json()
    return str(study["MainDicomTags"]["StudyInstanceUID"])


def test_pyorthanc_and_orthanc_api_client(net: Net) -> None:
    client = pyorthanc.Orthanc(net.url)
    modality = pyorthanc.Modality(client, "orthanc")
    assert modality.echo()
    _remote_study(net)
    found = modality.find({"Level": "Study", "Query": {"PatientID": "REMOTE1"}})
    assert found["answers"] and found["answers"][0]["PatientID"] == "REMOTE1"
    assert modality.store(net.study_id)["InstancesCount"] == 3
    moved = modality.move(found["ID"], {"TargetAet": "PACS"})
    assert moved["RemoteAet"] == ORTHANC_AE

    api = OrthancApiClient(net.url)
    api.modalities.configure("api", {"AET": "APIAE", "Host": "127.0.0.1", "Port": 104})
    assert api.modalities.get_configuration("api")["AET"] == "APIAE"
    assert api.modalities.get_id_from_aet("APIAE") == "api"
    studies = api.modalities.query_studies("orthanc", {"PatientID": "REMOTE1"})
    assert studies and studies[0].dicom_id
    api.modalities.send("orthanc", net.study_id)
    assert api.modalities.retrieve_study("orthanc", studies[0].dicom_id)
    api.modalities.delete("api")
    assert "api" not in api.modalities.get_all_ids()


def test_modalities_added_over_rest_survive_a_restart_and_admit_callers(tmp_path: Path) -> None:
    """Stored in the index; with callers restricted, a modality added over REST may call."""
    from tests.e2e.helpers import echo_ok

    for fast in ("true", "false"):
        folder = tmp_path / fast
        folder.mkdir()
        options = f"accept_unknown_callers = false\nfast_store = {fast}"
        server = start_server(folder, name="a", dimse_options=options)
        try:
            wait_for_port(server.http_port, process=server.process)
            url = f"http://127.0.0.1:{server.http_port}"
            assert not echo_ok(server.dimse_port, "NEWCALLER")
            body = {"AET": "NEWCALLER", "Host": "127.0.0.1", "Port": 104, "AllowStore": False}
            assert requests.put(f"{url}/modalities/new", json=body, timeout=10).ok
            time.sleep(1.2)  # the DIMSE door reads the registry at most once a second
            assert echo_ok(server.dimse_port, "NEWCALLER")
        finally:
            server.stop()
        server = start_server(folder, name="a", dimse_options=options, data_dir=server.data_dir)
        try:
            wait_for_port(server.http_port, process=server.process)
            url = f"http://127.0.0.1:{server.http_port}"
            config = requests.get(f"{url}/modalities/new/configuration", timeout=10).json()
            assert config["AET"] == "NEWCALLER" and config["AllowStore"] is False
            assert echo_ok(server.dimse_port, "NEWCALLER")
        finally:
            server.stop()


def test_store_to_dcmtk_storescp(tmp_path: Path) -> None:
    """DCMTK's storescp as a plain remote (no Orthanc needed)."""
    storescp = dcmtk_tool("storescp")
    if storescp is None:
        pytest.skip("DCMTK storescp is not installed")
    received = tmp_path / "received"
    received.mkdir()
    port = free_port()
    scp = subprocess.Popen(
        [storescp, "-aet", "STORESCP", "-od", str(received), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = start_server(tmp_path, modality_config("scp", "STORESCP", port), name="ours")
    try:
        wait_for_port(port, process=scp)
        wait_for_port(server.http_port, process=server.process)
        url = f"http://127.0.0.1:{server.http_port}"
        series = make_series(2, patient_id="SCP1", rows=4, columns=4)
        for ds in series:
            assert requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).ok
        assert requests.post(f"{url}/modalities/scp/echo", timeout=30).json() == {}
        ids = requests.get(f"{url}/instances", timeout=10).json()
        answer = requests.post(f"{url}/modalities/scp/store", json=ids, timeout=60).json()
        assert answer["InstancesCount"] == 2 and answer["FailedInstancesCount"] == 0
        names = sorted(p.name for p in received.iterdir())
        assert len(names) == 2, names
        assert {ds.SOPInstanceUID for ds in series} == {n.split(".", 1)[1] for n in names}
    finally:
        server.stop()
        scp.terminate()
        scp.wait(timeout=10)


def test_refused_instances_permissive_and_cancel(tmp_path: Path) -> None:
    scp = SlowPickyScp(delay=0.2, refuse={2})
    server = start_server(tmp_path, modality_config("picky", "PICKY", scp.port), name="ours")
    try:
        wait_for_port(server.http_port, process=server.process)
        url = f"http://127.0.0.1:{server.http_port}"
        for ds in make_series(3, patient_id="PICKY1", study_uid=new_uid(), rows=4, columns=4):
            assert requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).ok
        [study] = requests.get(f"{url}/studies", timeout=10).json()
        refused = _error(
            requests.post(f"{url}/modalities/picky/store", json=[study], timeout=60), 422, 9
        )
        assert "1 of 3 instance(s)" in refused["Details"]
        permissive = requests.post(
            f"{url}/modalities/picky/store",
            json={"Resources": [study], "Permissive": True},
            timeout=60,
        )
        assert permissive.status_code == 200, permissive.text
        assert permissive.json()["FailedInstancesCount"] == 1
        assert len(scp.received) == 4

        scp.refuse.clear()
        scp.delay = 1.0
        started = requests.post(
            f"{url}/modalities/picky/store",
            json={"Resources": [study], "Asynchronous": True},
            timeout=60,
        ).json()
        time.sleep(0.3)
        running = requests.get(f"{url}/jobs/{started['ID']}", timeout=10).json()
        assert running["State"] == "Running" and "CompletionTime" not in running
        assert requests.post(f"{url}/jobs/{started['ID']}/cancel", timeout=10).json() == {}
        job = wait_job(url, started["ID"])
        assert job["State"] == "Failure" and job["ErrorCode"] == 14
        assert len(scp.received) < 4 + 3
    finally:
        server.stop()
        scp.stop()
