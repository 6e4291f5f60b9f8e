"""/tools/find's OrderBy, ResponseContent and Parent* (Orthanc 1.12.5), and ``requestedTags``
on resource lists (Orthanc 1.11+)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from orthanc_api_client import OrthancApiClient

from pacs.core.ids import public_id
from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, to_bytes

# (patient, study uid, study date, institution); posted in this order
STUDIES = [
    ("ORD1", "1.9.1", "20200105", "Hue"),
    ("ORD1", "1.9.2", "20221231", "Bach Mai"),
    ("ORD2", "1.9.3", "20210615", "Cho Ray"),
    ("ORD2", "1.9.4", "", "Alpha"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory, "find-options") as server:
        wait_for_port(server.http_port, process=server.process)
        base = f"http://127.0.0.1:{server.http_port}"
        for patient, study_uid, date, institution in STUDIES:
            ds = make_image(
                patient_id=patient,
                study_uid=study_uid,
                study_date=date,
                InstitutionName=institution,
            )
            response = requests.post(f"{base}/instances", data=to_bytes(ds), timeout=30)
            assert response.status_code == 200
            time.sleep(1.1)  # LastUpdate has a one-second resolution
        for number in (10, 2, 1):  # series numbers compared as numbers, not text
            ds = make_image(patient_id="ORD3", study_uid="1.9.5", series_number=number)
            assert requests.post(f"{base}/instances", data=to_bytes(ds), timeout=30).ok
        yield base


def find(url: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/tools/find", data=json.dumps(body), timeout=30)


def study(uid: str) -> str:
    patient = next(p for p, u, _, _ in STUDIES if u == uid)
    return public_id(patient, uid)


MINE = {"StudyInstanceUID": "1.9.1\\1.9.2\\1.9.3\\1.9.4"}


def order(key: str, direction: str, kind: str = "DicomTag") -> list[dict[str, str]]:
    return [{"Type": kind, "Key": key, "Direction": direction}]


def test_order_by_dicom_tag_then_page(url: str) -> None:
    body: dict[str, Any] = {"Level": "Study", "Query": MINE, "OrderBy": order("StudyDate", "DESC")}
    newest_first = [study(u) for u in ("1.9.2", "1.9.3", "1.9.1", "1.9.4")]  # empty date last
    assert find(url, body).json() == newest_first
    body["OrderBy"] = order("0008,0020", "ASC")
    assert find(url, body).json() == newest_first[::-1]
    # Since and Limit apply to the ordered list
    body.update(OrderBy=order("StudyDate", "DESC"), Since=1, Limit=2)
    assert find(url, body).json() == newest_first[1:3]
    # a tag read from the stored headers
    by_institution = {"Level": "Study", "Query": MINE, "OrderBy": order("InstitutionName", "ASC")}
    assert find(url, by_institution).json() == [
        study(u) for u in ("1.9.4", "1.9.2", "1.9.3", "1.9.1")
    ]


def test_order_by_several_keys_and_numbers(url: str) -> None:
    keys = order("PatientID", "DESC") + order("StudyDate", "ASC")
    body = {"Level": "Study", "Query": MINE, "OrderBy": keys}
    assert find(url, body).json() == [study(u) for u in ("1.9.4", "1.9.3", "1.9.1", "1.9.2")]
    series = {
        "Level": "Series",
        "Query": {"StudyInstanceUID": "1.9.5"},
        "OrderBy": order("SeriesNumber", "ASC"),
        "Expand": True,
    }
    numbers = [s["MainDicomTags"]["SeriesNumber"] for s in find(url, series).json()]
    assert numbers == ["1", "2", "10"]


def test_order_by_last_update(url: str) -> None:
    body = {"Level": "Study", "Query": MINE, "OrderBy": order("LastUpdate", "DESC", "Metadata")}
    assert find(url, body).json() == [study(u) for u in ("1.9.4", "1.9.3", "1.9.2", "1.9.1")]


def test_order_by_with_orthanc_api_client(url: str) -> None:
    client = OrthancApiClient(url)
    found = client.studies.find(
        query={"PatientID": "ORD*"},
        order_by=order("StudyDate", "ASC"),
        requested_tags=["StudyDate", "InstitutionName"],
        limit=2,
    )
    assert [s.orthanc_id for s in found] == [study("1.9.4"), study("1.9.1")]
    assert found[1].requested_tags.get("InstitutionName") == "Hue"


def test_response_content_and_parents(url: str) -> None:
    body: dict[str, Any] = {
        "Level": "Study",
        "Query": {},
        "ParentPatient": public_id("ORD1"),
        "ResponseContent": ["MainDicomTags", "Labels", "Metadata"],
        "OrderBy": order("StudyDate", "ASC"),
    }
    first, second = find(url, body).json()
    assert [first["ID"], second["ID"]] == [study("1.9.1"), study("1.9.2")]
    assert set(first) == {
        "ID",
        "Type",
        "MainDicomTags",
        "PatientMainDicomTags",
        "LastUpdate",
        "Labels",
        "Metadata",
    }
    assert first["Labels"] == [] and "LastUpdate" in first["Metadata"]
    body.update(ResponseContent=["Children", "Parent", "IsStable"])
    assert set(find(url, body).json()[0]) == {"ID", "Type", "Series", "ParentPatient", "IsStable"}
    instances = {"Level": "Instance", "Query": {}, "ParentStudy": study("1.9.3")}
    assert len(find(url, instances).json()) == 1
    assert find(url, {**instances, "ParentStudy": "0" * 8 + "-0000000" * 4}).json() == []


def test_requested_tags_on_lists(url: str) -> None:
    answer = requests.get(
        f"{url}/studies", params={"expand": "", "requestedTags": "StudyDate;0010,0020"}, timeout=30
    ).json()
    by_id = {s["ID"]: s["RequestedTags"] for s in answer}
    assert by_id[study("1.9.2")] == {"StudyDate": "20221231", "PatientID": "ORD1"}
    assert by_id[study("1.9.4")] == {"StudyDate": "", "PatientID": "ORD2"}
    one = requests.get(
        f"{url}/studies/{study('1.9.3')}", params={"requestedTags": "InstitutionName"}, timeout=30
    ).json()
    assert one["RequestedTags"] == {"InstitutionName": "Cho Ray"}
    children = requests.get(
        f"{url}/patients/{public_id('ORD1')}/studies",
        params={"requestedTags": "NumberOfStudyRelatedInstances"},
        timeout=30,
    ).json()
    assert [c["RequestedTags"] for c in children] == [{"NumberOfStudyRelatedInstances": "1"}] * 2
    plain = requests.get(f"{url}/studies", params={"expand": ""}, timeout=30).json()
    assert all("RequestedTags" not in s for s in plain)


@pytest.mark.parametrize(
    "extra",
    [
        {"OrderBy": {"Key": "StudyDate"}},
        {"OrderBy": [{"Type": "DicomTag", "Key": "Nope", "Direction": "ASC"}]},
        {"OrderBy": [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "UP"}]},
        {"OrderBy": [{"Type": "Metadata", "Key": "Nope", "Direction": "ASC"}]},
        {"OrderBy": [{"Type": "Other", "Key": "StudyDate"}]},
        {"ResponseContent": ["Everything"]},
        {"ResponseContent": "MainDicomTags"},
        {"ParentSeries": public_id("ORD1")},
        {"ParentPatient": 3},
    ],
)
def test_bad_options_are_400(url: str, extra: dict[str, Any]) -> None:
    response = find(url, {"Level": "Study", "Query": {}, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["HttpStatus"] == 400


def test_bad_requested_tags_argument_is_400(url: str) -> None:
    response = requests.get(f"{url}/studies?expand&requestedTags=Nope", timeout=30)
    assert response.status_code == 400 and response.json()["OrthancStatus"] == 27
