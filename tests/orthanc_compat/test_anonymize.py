"""``/anonymize`` and ``/modify``: the new study's hierarchy, the PS3.15 basic profile,
Keep/Replace/Remove, UIDs mapped consistently, Orthanc's errors."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyorthanc
import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset

from orthanc_compat.anonymize_tables import PROFILES
from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, make_series, to_bytes
from tests.orthanc_compat.identified import (
    DUMMY,
    PRIVATE_VALUE,
    identified_study,
    profile_tags,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Server:
    """The server's URL and the study stored in it."""

    url: str
    study_id: str
    originals: list[Dataset]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory, "anonymize") as running:
        wait_for_port(running.http_port, process=running.process)
        url = f"http://127.0.0.1:{running.http_port}"
        originals = identified_study()
        for ds in originals:
            answer = requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30)
            assert answer.status_code == 200, answer.text
        yield Server(url, answer.json()["ParentStudy"], originals)


def _post(url: str, path: str, body: Any) -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(f"{url}{path}", data=data, timeout=60)


def _files(url: str, study_id: str) -> list[Dataset]:
    """The study's instances as data sets, in series then instance number order."""
    ids = [i["ID"] for i in requests.get(f"{url}/studies/{study_id}/instances", timeout=30).json()]
    files = [
        dcmread(io.BytesIO(requests.get(f"{url}/instances/{i}/file", timeout=30).content))
        for i in ids
    ]
    return sorted(files, key=lambda ds: (int(ds.SeriesNumber), int(ds.InstanceNumber)))


def _by_position(originals: list[Dataset]) -> list[Dataset]:
    return sorted(originals, key=lambda ds: (int(ds.SeriesNumber), int(ds.InstanceNumber)))


def test_anonymized_study_is_one_new_consistent_study(server: Server) -> None:
    answer = _post(server.url, f"/studies/{server.study_id}/anonymize", {})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["Type"] == "Study" and body["IsAnonymization"] is True
    assert body["Path"] == f"/studies/{body['ID']}" and body["ID"] != server.study_id
    assert body["InstancesCount"] == 3 and body["FailedInstancesCount"] == 0
    patient = requests.get(f"{server.url}/patients/{body['PatientID']}", timeout=30).json()
    assert patient["Studies"] == [body["ID"]]
    series = requests.get(f"{server.url}/studies/{body['ID']}/series", timeout=30).json()
    assert len(series) == 2
    new, old = _files(server.url, body["ID"]), _by_position(server.originals)
    assert len({ds.StudyInstanceUID for ds in new}) == 1
    assert new[0].StudyInstanceUID != old[0].StudyInstanceUID
    assert len({ds.SeriesInstanceUID for ds in new}) == 2
    assert new[0].SeriesInstanceUID == new[1].SeriesInstanceUID
    assert {ds.SOPInstanceUID for ds in new}.isdisjoint({ds.SOPInstanceUID for ds in old})
    assert len({ds.FrameOfReferenceUID for ds in new}) == 1
    assert new[0].FrameOfReferenceUID != old[0].FrameOfReferenceUID
    derived = new[2]  # its references follow the instances of the first series
    refs = [item.ReferencedSOPInstanceUID for item in derived.ReferencedImageSequence]
    assert refs == [new[0].SOPInstanceUID, new[1].SOPInstanceUID]
    assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID == new[0].SOPInstanceUID
    for ds, before in zip(new, old, strict=True):
        assert re.fullmatch(r"Anonymized\d+", str(ds.PatientName))
        assert UUID.match(ds.PatientID) and ds.PatientID == new[0].PatientID
        assert ds.PatientIdentityRemoved == "YES"
        assert "PS 3.15-2021b" in ds.DeidentificationMethod
        assert ds.PixelData == before.PixelData  # pixels untouched
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == before.Modality and ds.SeriesNumber == before.SeriesNumber
    new_ids = requests.get(f"{server.url}/studies/{body['ID']}/instances", timeout=30).json()
    metadata = requests.get(
        f"{server.url}/instances/{new_ids[0]['ID']}/metadata?expand", timeout=30
    )
    assert metadata.json()["Origin"] == "RestApi"
    source = metadata.json()["AnonymizedFrom"]
    assert requests.get(f"{server.url}/instances/{source}/study", timeout=30).json()["ID"] == (
        server.study_id
    )


@pytest.mark.parametrize("version", ["2017c", "2021b"])
def test_every_profile_attribute_is_removed_blanked_or_replaced(
    server: Server, version: str
) -> None:
    answer = _post(server.url, f"/studies/{server.study_id}/anonymize", {"DicomVersion": version})
    assert answer.status_code == 200, answer.text
    profile = PROFILES[version]
    new = _files(server.url, answer.json()["ID"])
    present = set(profile_tags())
    for ds in new:
        for tag in present & profile.remove:
            assert tag not in ds, f"{tag:08X} kept"
        for tag in present & profile.clear:
            assert tag in ds and ds[tag].is_empty, f"{tag:08X} not blanked"
        for tag in present & profile.uid:
            assert ds[tag].value != DUMMY["UI"], f"{tag:08X} not replaced"
        assert all(not elem.tag.is_private for elem in ds)  # private tags removed
        for item in ds.get("ReferencedImageSequence", []):
            assert all(not elem.tag.is_private for elem in item)
        for text in ("Bach Mai", "Nguyen^Van A", "CT CHEST", "Op^One", "Inner^Secret"):
            assert text not in str(ds), f"{text} left in {version}"
    old = _by_position(server.originals)
    pairs = {
        (o[t].value, n[t].value)
        for o, n in zip(old, new, strict=True)
        for t in present & profile.uid
    }
    assert len(pairs) == len({o for o, _ in pairs}) == len({n for _, n in pairs}) == 2
    # one original UID (the dummy, or the FrameOfReferenceUID) -> one new UID everywhere


def test_keep_replace_remove_and_private_tags(server: Server) -> None:
    body = {
        "Keep": ["StudyDescription", "0008,1070"],
        "Replace": {"InstitutionName": "Research site", "PatientName": "Subject^One"},
        "Remove": ["Modality"],
        "KeepPrivateTags": True,
        "DicomVersion": "2017c",
    }
    answer = _post(server.url, f"/studies/{server.study_id}/anonymize", body)
    assert answer.status_code == 200, answer.text
    for ds in _files(server.url, answer.json()["ID"]):
        assert ds.StudyDescription == "CT CHEST" and ds.OperatorsName == "Op^One"
        assert ds.InstitutionName == "Research site" and ds.PatientName == "Subject^One"
        assert "Modality" not in ds
        assert ds[PRIVATE_VALUE].value == "private secret"
        assert "DeidentificationMethod" not in ds  # a customised profile: as Orthanc


def test_each_request_gets_new_identifiers(server: Server) -> None:
    first = _post(server.url, f"/studies/{server.study_id}/anonymize", {}).json()
    second = _post(server.url, f"/studies/{server.study_id}/anonymize", {}).json()
    assert first["ID"] != second["ID"] and first["PatientID"] != second["PatientID"]
    one, two = _files(server.url, first["ID"]), _files(server.url, second["ID"])
    assert one[0].StudyInstanceUID != two[0].StudyInstanceUID
    assert int(str(two[0].PatientName)[10:]) > int(str(one[0].PatientName)[10:])


def test_anonymize_series_and_keep_source(tmp_path_factory: pytest.TempPathFactory) -> None:
    with serve(tmp_path_factory, "anonymize-source") as running:
        wait_for_port(running.http_port, process=running.process)
        url = f"http://127.0.0.1:{running.http_port}"
        for ds in make_series(2, patient_id="KS1", rows=4, columns=4):
            answer = requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).json()
        series_id = answer["ParentSeries"]
        result = _post(url, f"/series/{series_id}/anonymize", {"KeepSource": False})
        assert result.status_code == 200, result.text
        body = result.json()
        assert body["Type"] == "Series" and body["InstancesCount"] == 2
        assert requests.get(f"{url}/series/{series_id}", timeout=30).status_code == 404
        assert requests.get(f"{url}/series", timeout=30).json() == [body["ID"]]


def test_anonymize_instance_answers_the_file(server: Server) -> None:
    before = requests.get(f"{server.url}/instances", timeout=30).json()
    answer = _post(server.url, f"/instances/{before[0]}/anonymize", {})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/dicom"
    ds = dcmread(io.BytesIO(answer.content))
    assert ds.PatientIdentityRemoved == "YES" and "InstitutionName" not in ds
    assert requests.get(f"{server.url}/instances", timeout=30).json() == before  # not stored


def test_modify_study_replaces_and_removes(server: Server) -> None:
    body: dict[str, Any] = {"Replace": {"InstitutionName": "New name", "StudyDescription": "CT"}}
    body["Remove"] = ["OperatorsName"]
    answer = _post(server.url, f"/studies/{server.study_id}/modify", body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["Type"] == "Study" and result["IsAnonymization"] is False
    new, old = _files(server.url, result["ID"]), _by_position(server.originals)
    original_patient = requests.get(f"{server.url}/studies/{server.study_id}", timeout=30)
    assert result["PatientID"] == original_patient.json()["ParentPatient"]
    for ds, before in zip(new, old, strict=True):
        assert ds.InstitutionName == "New name" and ds.StudyDescription == "CT"
        assert "OperatorsName" not in ds
        assert ds.PatientID == before.PatientID and ds.PatientName == before.PatientName
        assert ds.StudyInstanceUID != before.StudyInstanceUID
        assert ds.SeriesInstanceUID != before.SeriesInstanceUID
        assert ds.SOPInstanceUID != before.SOPInstanceUID
        assert ds.FrameOfReferenceUID == before.FrameOfReferenceUID  # modify keeps the rest
        assert ds[PRIVATE_VALUE].value == "private secret"
    assert len({ds.SeriesInstanceUID for ds in new}) == 2
    new_id = requests.get(f"{server.url}/studies/{result['ID']}/instances", timeout=30).json()[0]
    metadata = requests.get(f"{server.url}/instances/{new_id['ID']}/metadata?expand", timeout=30)
    assert "ModifiedFrom" in metadata.json()


def test_modify_identifiers_needs_force(server: Server) -> None:
    path = f"/studies/{server.study_id}/modify"
    refused = _post(server.url, path, {"Replace": {"StudyInstanceUID": "1.2.3.4.5"}})
    assert refused.status_code == 400
    assert '"Force"' in refused.json()["Details"]
    forced = _post(server.url, path, {"Replace": {"StudyInstanceUID": "1.2.3.4.5"}, "Force": True})
    assert forced.status_code == 200, forced.text
    assert all(ds.StudyInstanceUID == "1.2.3.4.5" for ds in _files(server.url, forced.json()["ID"]))
    parent = _post(server.url, path, {"Replace": {"PatientID": "X"}, "Force": True})
    assert parent.status_code == 400 and "PatientID" in parent.json()["Details"]


def test_modify_series_keeps_its_study(server: Server) -> None:
    series = requests.get(f"{server.url}/studies/{server.study_id}/series", timeout=30).json()
    answer = _post(server.url, f"/series/{series[0]['ID']}/modify", {"Replace": {"Modality": "OT"}})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["Type"] == "Series"
    study = requests.get(f"{server.url}/series/{result['ID']}/study", timeout=30).json()
    assert study["ID"] == server.study_id
    assert (
        requests.get(f"{server.url}/series/{result['ID']}", timeout=30).json()["MainDicomTags"][
            "Modality"
        ]
        == "OT"
    )


@pytest.mark.parametrize(
    ("suffix", "body", "status"),
    [
        ("anonymize", "not json", 400),
        ("anonymize", "", 400),
        ("anonymize", [1], 400),
        ("anonymize", {"Keep": "StudyDescription"}, 400),
        ("anonymize", {"Keep": ["NoSuchTag"]}, 400),
        ("anonymize", {"DicomVersion": "1999"}, 400),
        ("anonymize", {"KeepPrivateTags": "yes"}, 400),
        ("anonymize", {"Asynchronous": "yes"}, 400),
        ("anonymize", {"Remove": ["PatientID"], "Force": True}, 400),
        ("modify", {"Replace": {"Rows": "many"}}, 400),
        ("modify", {"Replace": "x"}, 400),
        ("modify", {"Remove": ["SeriesInstanceUID"]}, 400),
    ],
)
def test_bad_bodies(server: Server, suffix: str, body: Any, status: int) -> None:
    answer = _post(server.url, f"/studies/{server.study_id}/{suffix}", body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["HttpStatus"] == status and "OrthancStatus" in error


def test_unknown_resource(server: Server) -> None:
    missing = "00000000-00000000-00000000-00000000-00000000"
    for suffix in ("anonymize", "modify"):
        answer = _post(server.url, f"/studies/{missing}/{suffix}", {})
        assert answer.status_code == 404


def test_modify_patient_needs_a_new_patient_id(server: Server) -> None:
    study = requests.get(f"{server.url}/studies/{server.study_id}", timeout=30).json()
    path = f"/patients/{study['ParentPatient']}/modify"
    assert _post(server.url, path, {"Replace": {"PatientName": "A^B"}}).status_code == 400
    answer = _post(server.url, path, {"Replace": {"PatientID": "NEWPAT"}, "Force": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Type"] == "Patient"
    patient = requests.get(f"{server.url}/patients/{answer.json()['ID']}", timeout=30).json()
    assert patient["MainDicomTags"]["PatientID"] == "NEWPAT"


def test_pyorthanc_anonymizes(server: Server) -> None:
    orthanc = pyorthanc.Orthanc(server.url)
    ds = make_image(patient_id="PYANON", patient_name="Le^Thi D", rows=4, columns=4)
    answer = orthanc.post_instances(to_bytes(ds))
    study = pyorthanc.Study(answer["ParentStudy"], orthanc)
    anonymized = study.anonymize(keep=["StudyDescription"], replace={"PatientName": "Research^1"})
    assert anonymized.id_ != study.id_
    assert anonymized.patient_information["PatientName"] == "Research^1"
    assert anonymized.main_dicom_tags["StudyDescription"] == "CT CHEST"
    instance = pyorthanc.Instance(answer["ID"], orthanc)
    raw = instance.anonymize(remove=["StudyDescription"])
    assert "StudyDescription" not in dcmread(io.BytesIO(raw))


def test_replacement_outside_the_character_set(server: Server) -> None:
    ds = make_image(
        patient_id="LATIN1", patient_name="Müller^Jörg", charset="ISO_IR 100", rows=4, columns=4
    )
    answer = requests.post(f"{server.url}/instances", data=to_bytes(ds), timeout=30).json()
    body = {"Replace": {"InstitutionName": "Bệnh viện Bạch Mai"}}
    result = _post(server.url, f"/studies/{answer['ParentStudy']}/modify", body)
    assert result.status_code == 200, result.text
    [new] = _files(server.url, result.json()["ID"])
    assert new.SpecificCharacterSet == "ISO_IR 192"
    assert new.InstitutionName == "Bệnh viện Bạch Mai" and new.PatientName == "Müller^Jörg"
