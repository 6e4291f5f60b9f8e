"""/patients, /studies, /series, /instances: lists, one resource, children and parents."""

from __future__ import annotations

import requests

from pacs.core.ids import public_id
from tests.orthanc_compat.conftest import Stored

STUDY = public_id("PAT001", "1.2.3.4")
SERIES = public_id("PAT001", "1.2.3.4", "1.2.3.4.5")


def get(stored: Stored, path: str) -> requests.Response:
    return requests.get(f"{stored.url}{path}", timeout=30)


def test_lists_and_expand(stored: Stored) -> None:
    assert sorted(get(stored, "/patients").json()) == sorted(
        [public_id("PAT001"), public_id("PAT002")]
    )
    assert len(get(stored, "/studies").json()) == 2
    assert len(get(stored, "/series").json()) == 2
    assert len(get(stored, "/instances").json()) == 4
    studies = get(stored, "/studies?expand").json()
    first = next(s for s in studies if s["ID"] == STUDY)
    assert first["Type"] == "Study"
    assert first["ParentPatient"] == public_id("PAT001")
    assert first["Series"] == [SERIES]
    assert first["MainDicomTags"]["StudyInstanceUID"] == "1.2.3.4"
    assert first["MainDicomTags"]["InstitutionName"] == "Bach Mai"  # from the stored header
    assert first["PatientMainDicomTags"]["PatientID"] == "PAT001"
    assert first["IsStable"] is False
    assert len(first["LastUpdate"]) == 15 and first["LastUpdate"][8] == "T"


def test_since_and_limit(stored: Stored) -> None:
    every = get(stored, "/instances").json()
    assert get(stored, "/instances?since=1&limit=2").json() == every[1:3]
    assert get(stored, "/instances?since=3&limit=10").json() == every[3:]
    assert len(get(stored, "/instances?expand&since=0&limit=1").json()) == 1
    bad = get(stored, "/instances?since=x&limit=1")
    assert bad.status_code == 400 and bad.json()["HttpStatus"] == 400
    assert get(stored, "/instances?since=1").status_code == 400  # Orthanc wants both


def test_one_resource_of_each_level(stored: Stored) -> None:
    patient = get(stored, f"/patients/{public_id('PAT001')}").json()
    assert patient["Studies"] == [STUDY] and patient["Type"] == "Patient"
    series = get(stored, f"/series/{SERIES}").json()
    assert series["ParentStudy"] == STUDY and len(series["Instances"]) == 3
    assert series["Status"] == "Unknown" and series["ExpectedNumberOfInstances"] is None
    assert series["MainDicomTags"]["Manufacturer"] == "ACME"
    assert series["MainDicomTags"]["SeriesNumber"] == "1"
    ds = stored.ct[1]
    instance_id = public_id("PAT001", "1.2.3.4", "1.2.3.4.5", str(ds.SOPInstanceUID))
    instance = get(stored, f"/instances/{instance_id}").json()
    assert instance["ParentSeries"] == SERIES
    assert instance["IndexInSeries"] == 2
    assert instance["MainDicomTags"] == {
        "InstanceNumber": "2",
        "SOPInstanceUID": str(ds.SOPInstanceUID),
    }
    assert instance["FileSize"] == len(
        bytes(requests.get(f"{stored.url}/instances/{instance_id}/file", timeout=30).content)
    )
    assert len(instance["FileUuid"]) == 36


def test_children_and_parents(stored: Stored) -> None:
    patient = public_id("PAT001")
    assert [s["ID"] for s in get(stored, f"/patients/{patient}/studies").json()] == [STUDY]
    assert [s["ID"] for s in get(stored, f"/patients/{patient}/series").json()] == [SERIES]
    assert len(get(stored, f"/patients/{patient}/instances").json()) == 3
    assert len(get(stored, f"/studies/{STUDY}/instances").json()) == 3
    assert get(stored, f"/series/{SERIES}/study").json()["ID"] == STUDY
    assert get(stored, f"/series/{SERIES}/patient").json()["ID"] == patient
    instance = get(stored, f"/series/{SERIES}/instances").json()[0]["ID"]
    assert get(stored, f"/instances/{instance}/series").json()["ID"] == SERIES
    assert get(stored, f"/instances/{instance}/study").json()["ID"] == STUDY
    assert get(stored, f"/instances/{instance}/patient").json()["ID"] == patient
    assert get(stored, f"/studies/{STUDY}/patient").json()["Type"] == "Patient"


def test_unknown_ids_are_404_in_orthancs_shape(stored: Stored) -> None:
    for path in (
        f"/studies/{public_id('nobody')}",
        "/studies/not-an-id",
        f"/instances/{STUDY}",  # a study id is no instance id
        f"/series/{public_id('x')}/instances",
        f"/instances/{public_id('x')}/file",
        f"/instances/{public_id('x')}/tags",
    ):
        response = get(stored, path)
        assert response.status_code == 404, path
        body = response.json()
        assert body["HttpStatus"] == 404 and body["OrthancStatus"] == 17
        assert body["Uri"] == path.split("?")[0] and body["Method"] == "GET"
