"""GET /{patients,studies,series}/{id}/media and POST /tools/create-media: a ZIP with a
DICOMDIR listing every file, read back with pydicom's FileSet and DCMTK's dcmdump."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pyorthanc
import pytest
import requests
from pydicom import dcmread
from pydicom.fileset import FileSet

from pacs.core.ids import public_id
from tests.e2e.helpers import dcmtk_tool
from tests.factories import make_image, make_series, new_uid, to_bytes
from tests.orthanc_compat.conftest import Stored, post


def _unpack(content: bytes, folder: Path) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        assert bundle.testzip() is None
        bundle.extractall(folder)
        return bundle.namelist()


def test_study_media_has_a_dicomdir_listing_every_file(stored: Stored, tmp_path: Path) -> None:
    study_uid = new_uid()
    first = make_series(3, patient_id="MEDIA1", study_uid=study_uid, series_number=1)
    second = make_series(2, patient_id="MEDIA1", study_uid=study_uid, series_number=2)
    for ds in first + second:
        assert post(stored.url, ds).status_code == 200
    study = public_id("MEDIA1", study_uid)
    response = requests.get(f"{stored.url}/studies/{study}/media", timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    names = _unpack(response.content, tmp_path)
    assert names == ["DICOMDIR", *(f"IMAGES/IM{n}" for n in range(5))]
    file_set = FileSet(dcmread(tmp_path / "DICOMDIR"))
    assert len(file_set) == 5
    sent = {str(ds.SOPInstanceUID): to_bytes(ds) for ds in first + second}
    for instance in file_set:
        assert instance.path.startswith(str(tmp_path / "IMAGES"))
        assert Path(instance.path).read_bytes() == sent[instance.SOPInstanceUID]
    [patient] = file_set.find(PatientID="MEDIA1")[:1]
    assert len(file_set.find(StudyInstanceUID=study_uid)) == 5
    assert patient.PatientName == "Doe^John"
    series_numbers = {str(record.SeriesNumber) for record in _records(tmp_path, "SERIES")}
    assert series_numbers == {"1", "2"}
    dcmdump = dcmtk_tool("dcmdump")
    if dcmdump is None:
        pytest.skip("DCMTK dcmdump is not installed")
    done = subprocess.run(
        [dcmdump, str(tmp_path / "DICOMDIR")], capture_output=True, text=True, check=True
    )
    assert done.stderr == ""
    assert done.stdout.count("DirectoryRecordType") == 1 + 1 + 2 + 5
    for n in range(5):
        assert f"IMAGES\\IM{n}]" in done.stdout


def _records(folder: Path, kind: str) -> list:
    return [
        r
        for r in dcmread(folder / "DICOMDIR").DirectoryRecordSequence
        if r.DirectoryRecordType == kind
    ]


def test_create_media_of_several_patients_with_pyorthanc(stored: Stored, tmp_path: Path) -> None:
    one = make_image(patient_id="MEDIA2", patient_name="Nguyễn^Văn A", charset="ISO_IR 192")
    two = make_series(2, patient_id="MEDIA3")
    answers = [post(stored.url, ds).json() for ds in [one, *two]]
    orthanc = pyorthanc.Orthanc(stored.url)
    content = orthanc.post_tools_create_media(
        json={"Resources": [answers[0]["ParentPatient"], answers[1]["ParentSeries"]]}
    )
    names = _unpack(content, tmp_path)
    assert len(names) == 4
    file_set = FileSet(dcmread(tmp_path / "DICOMDIR"))
    assert {i.SOPInstanceUID for i in file_set} == {str(ds.SOPInstanceUID) for ds in [one, *two]}
    assert [str(r.PatientName) for r in _records(tmp_path, "PATIENT")] == [
        "Nguyễn^Văn A",
        "Doe^John",
    ]
    series = orthanc.get_series_id_media(answers[1]["ParentSeries"])
    assert zipfile.ZipFile(io.BytesIO(series)).namelist() == [
        "DICOMDIR",
        "IMAGES/IM0",
        "IMAGES/IM1",
    ]


def test_bad_media_requests(stored: Stored) -> None:
    missing = requests.get(f"{stored.url}/studies/{public_id('none')}/media", timeout=30)
    assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 17
    for body in ("[]", "{}", "not json", '["nope"]', '{"Resources": ["x"], "Asynchronous": true}'):
        answer = requests.post(f"{stored.url}/tools/create-media", data=body, timeout=30)
        assert answer.status_code in (400, 404), body
        assert "OrthancStatus" in answer.json()
