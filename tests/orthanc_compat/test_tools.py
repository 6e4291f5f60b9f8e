"""POST /instances, /tools/find, /tools/lookup, /changes, /system, /statistics, small tools."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import requests

from pacs.core.ids import public_id
from tests.factories import make_image, make_series, new_uid, to_bytes
from tests.orthanc_compat.conftest import Stored, post

STUDY = public_id("PAT001", "1.2.3.4")


def find(stored: Stored, body: Any) -> requests.Response:
    return requests.post(f"{stored.url}/tools/find", data=json.dumps(body), timeout=30)


def test_post_instance_answers_ids_and_status(stored: Stored) -> None:
    ds = make_image(patient_id="UP1")
    first = post(stored.url, ds).json()
    expected = public_id(
        "UP1", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    )
    assert first == {
        "ID": expected,
        "ParentPatient": public_id("UP1"),
        "ParentSeries": public_id("UP1", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)),
        "ParentStudy": public_id("UP1", str(ds.StudyInstanceUID)),
        "Path": f"/instances/{expected}",
        "Status": "Success",
    }
    again = post(stored.url, ds).json()
    assert again["Status"] == "AlreadyStored" and again["ID"] == expected


def test_post_zip_stores_every_dicom_member(stored: Stored) -> None:
    series = make_series(3, patient_id="ZIP1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for n, ds in enumerate(series):
            bundle.writestr(f"dir/{n}.dcm", to_bytes(ds))
        bundle.writestr("README.txt", "not dicom")
    response = requests.post(f"{stored.url}/instances", data=buffer.getvalue(), timeout=30)
    assert response.status_code == 200
    answers = response.json()
    assert [a["Status"] for a in answers] == ["Success"] * 3
    assert len(requests.get(f"{stored.url}/patients/{public_id('ZIP1')}/instances").json()) == 3


def test_post_garbage_is_400(stored: Stored) -> None:
    for body in (b"garbage", b"", b"PK\x03\x04broken zip"):
        response = requests.post(f"{stored.url}/instances", data=body, timeout=30)
        assert response.status_code == 400, body
        assert response.json()["OrthancStatus"] == 15  # Bad file format


def test_find_levels_wildcards_and_case(stored: Stored) -> None:
    mine = {"PatientID": "PAT00?"}  # other tests store more patients named Doe
    query: dict[str, str] = {"PatientName": "doe*", **mine}
    assert find(stored, {"Level": "Study", "Query": query}).json() == [STUDY]
    # Orthanc matches text without regard to case unless CaseSensitive is set
    query = {"StudyDescription": "ct*", **mine}
    assert find(stored, {"Level": "Study", "Query": query}).json() == [STUDY]
    for query, expected in (
        ({"PatientName": "doe*", **mine}, []),
        ({"PatientName": "Doe*", **mine}, [STUDY]),
        ({"StudyDescription": "ct*", **mine}, []),
    ):
        strict = {"Level": "Study", "Query": query, "CaseSensitive": True}
        assert find(stored, strict).json() == expected, query
    assert find(stored, {"Level": "Patient", "Query": {"PatientName": "nguyen*"}}).json() == [
        public_id("PAT002")
    ]
    dates = find(stored, {"Level": "Study", "Query": {"StudyDate": "-20231231"}}).json()
    assert dates == [public_id("PAT002", str(stored.other.StudyInstanceUID))]
    by_tag = find(stored, {"Level": "Study", "Query": {"0008,0050": "ACC002"}}).json()
    assert len(by_tag) == 1
    mr = find(stored, {"Level": "Study", "Query": {"Modality": "MR"}}).json()
    assert mr == by_tag
    instances = find(stored, {"Level": "Instance", "Query": {"StudyInstanceUID": "1.2.3.4"}})
    assert len(instances.json()) == 3
    page = {"Level": "Instance", "Query": {"StudyInstanceUID": "1.2.3.4"}, "Limit": 2}
    assert find(stored, page).json() == instances.json()[:2]
    page["Since"] = 2
    assert find(stored, page).json() == instances.json()[2:]


def test_find_expand_and_requested_tags(stored: Stored) -> None:
    body = {
        "Level": "Study",
        "Query": {"StudyInstanceUID": "1.2.3.4"},
        "Expand": True,
        "RequestedTags": ["NumberOfStudyRelatedInstances", "ModalitiesInStudy", "PatientSex"],
    }
    [study] = find(stored, body).json()
    assert study["ID"] == STUDY and study["Type"] == "Study"
    assert study["RequestedTags"] == {
        "NumberOfStudyRelatedInstances": "3",
        "ModalitiesInStudy": "CT",
        "PatientSex": "M",
    }


def test_find_bad_bodies_are_400(stored: Stored) -> None:
    for body in (
        "{not json",
        [],
        {"Level": "Foo", "Query": {}},
        {"Level": "Study"},
        {"Level": "Study", "Query": {"NotATag": "x"}},
        {"Level": "Study", "Query": {"PatientName": 3}},
        {"Level": "Study", "Query": {}, "Limit": -1},
        {"Level": "Study", "Query": {}, "Limit": 10**30},
        {"Level": "Series", "Query": {"SeriesNumber": "abc"}},
        {"Level": "Study", "Query": {"gggg,eeee": "x"}},
        {"Level": "Study", "Query": {}, "Expand": "yes"},
    ):
        data = body if isinstance(body, str) else json.dumps(body)
        response = requests.post(f"{stored.url}/tools/find", data=data, timeout=30)
        assert response.status_code == 400, body
        assert response.json()["HttpError"] == "Bad Request"


def test_lookup(stored: Stored) -> None:
    response = requests.post(f"{stored.url}/tools/lookup", data="1.2.3.4", timeout=30)
    assert response.json() == [{"ID": STUDY, "Path": f"/studies/{STUDY}", "Type": "Study"}]
    by_patient = requests.post(f"{stored.url}/tools/lookup", data="PAT001", timeout=30).json()
    assert by_patient[0]["Type"] == "Patient"
    assert requests.post(f"{stored.url}/tools/lookup", data="0.0", timeout=30).json() == []


def test_changes_feed(stored: Stored) -> None:
    first = requests.get(f"{stored.url}/changes?limit=4", timeout=30).json()
    assert [c["Seq"] for c in first["Changes"]] == sorted(c["Seq"] for c in first["Changes"])
    kinds = {c["ChangeType"] for c in first["Changes"]}
    assert kinds <= {"NewPatient", "NewStudy", "NewSeries", "NewInstance"}
    change = first["Changes"][0]
    assert set(change) == {"ChangeType", "Date", "ID", "Path", "ResourceType", "Seq"}
    assert requests.get(f"{stored.url}{change['Path']}", timeout=30).status_code == 200
    assert first["Done"] is False and first["Last"] == first["Changes"][-1]["Seq"]
    rest = requests.get(f"{stored.url}/changes?since={first['Last']}&limit=10000").json()
    assert rest["Done"] is True
    assert rest["Changes"][0]["Seq"] > first["Last"]
    last = requests.get(f"{stored.url}/changes?last", timeout=30).json()
    assert len(last["Changes"]) == 1 and last["Last"] == rest["Last"]
    after = requests.get(f"{stored.url}/changes?since={rest['Last']}", timeout=30).json()
    assert after == {"Changes": [], "Done": True, "Last": rest["Last"]}


def test_system_statistics_and_tools(stored: Stored) -> None:
    system = requests.get(f"{stored.url}/system", timeout=30).json()
    assert system["Version"] == "1.10.1" and system["ApiVersion"] == 16
    assert system["DicomPort"] == stored.server.dimse_port
    assert system["HttpPort"] == stored.server.http_port
    stats = requests.get(f"{stored.url}/statistics", timeout=30).json()
    assert stats["CountStudies"] == stats["studies"] >= 2
    assert stats["TotalDiskSize"] == str(stats["total_size"])
    assert requests.get(f"{stored.url}/health", timeout=30).json()["status"] == "ok"
    now = requests.get(f"{stored.url}/tools/now", timeout=30).text
    assert len(now) == 15 and now[8] == "T"
    uid = requests.get(f"{stored.url}/tools/generate-uid?level=study", timeout=30).text
    assert uid.replace(".", "").isdigit() and len(uid) <= 64
    assert requests.get(f"{stored.url}/tools/generate-uid?level=x").status_code == 400
    script = requests.post(f"{stored.url}/tools/execute-script", data="print(1)", timeout=30)
    assert script.status_code == 501 and "Lua" in script.json()["Details"]


def test_dicomweb_still_served_beside(stored: Stored) -> None:
    response = requests.get(
        f"{stored.url}/dicom-web/studies", params={"StudyInstanceUID": "1.2.3.4"}, timeout=30
    )
    assert response.status_code == 200 and len(response.json()) == 1


def test_method_not_allowed_and_unknown_routes(stored: Stored) -> None:
    response = requests.delete(f"{stored.url}/system", timeout=30)
    assert response.status_code == 405 and response.json()["HttpStatus"] == 405
    assert requests.get(f"{stored.url}/no-such-route", timeout=30).status_code == 404
    assert new_uid()  # the factory still works after the server ran


def test_odd_requests_never_give_500(stored: Stored) -> None:
    instance = requests.get(f"{stored.url}/instances", timeout=30).json()[0]
    for method, path, body in (
        ("POST", "/tools/lookup", b"\xff\xfe\x00"),
        ("POST", "/tools/find", json.dumps({"Level": "Study", "Query": {"StudyDate": "a-b"}})),
        ("GET", "/instances?since=0&limit=99999999999999999999999", None),
        ("GET", "/changes?since=-5", None),
        ("GET", f"/instances/{instance}/content/0010-0010/0", None),
        ("GET", f"/instances/{instance}/content/%2e%2e", None),
        ("GET", f"/instances/{instance}/frames/99999999999999999999/raw", None),
        ("GET", f"/instances/{instance}/metadata/Nope", None),
        ("POST", "/instances", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff"),
    ):
        response = requests.request(method, f"{stored.url}{path}", data=body, timeout=30)
        assert response.status_code < 500, (path, response.text)
        if response.status_code >= 400:
            assert response.json()["HttpStatus"] == response.status_code
    assert "Traceback" not in requests.get(f"{stored.url}/no-route", timeout=30).text


def test_peers_are_empty_and_export_is_refused(stored: Stored) -> None:
    assert requests.get(f"{stored.url}/peers", timeout=10).json() == []
    instance = requests.get(f"{stored.url}/instances", timeout=10).json()[0]
    refused = requests.post(f"{stored.url}/instances/{instance}/export", data="/tmp/x", timeout=10)
    assert refused.status_code == 403
    assert "refused" in refused.json()["Details"]
