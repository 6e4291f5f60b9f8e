"""GET /{patients,studies,series}/{id}/archive: a ZIP of the stored files, streamed."""

from __future__ import annotations

import io
import zipfile

import requests
from pydicom import dcmread

from pacs.core.ids import public_id
from tests.factories import make_series, new_uid, to_bytes
from tests.orthanc_compat.conftest import Stored, post


def test_study_series_and_patient_archives(stored: Stored) -> None:
    study_uid = new_uid()
    first = make_series(3, patient_id="ZIPP", study_uid=study_uid, series_number=1)
    second = make_series(2, patient_id="ZIPP", study_uid=study_uid, series_number=2)
    for ds in first + second:
        assert post(stored.url, ds).status_code == 200
    study = public_id("ZIPP", study_uid)
    response = requests.get(f"{stored.url}/studies/{study}/archive", timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        names = bundle.namelist()
        assert len(names) == 5
        assert all(name.startswith("ZIPP Doe^John/20240115 CT CHEST/CT") for name in names)
        got = {str(dcmread(io.BytesIO(bundle.read(n))).SOPInstanceUID): n for n in names}
        sent = {str(ds.SOPInstanceUID): to_bytes(ds) for ds in first + second}
        assert set(got) == set(sent)
        for uid, name in got.items():
            assert bundle.read(name) == sent[uid]  # the stored bytes, unchanged
    series = public_id("ZIPP", study_uid, str(second[0].SeriesInstanceUID))
    with zipfile.ZipFile(
        io.BytesIO(requests.get(f"{stored.url}/series/{series}/archive", timeout=60).content)
    ) as bundle:
        assert len(bundle.namelist()) == 2
    patient = public_id("ZIPP")
    with zipfile.ZipFile(
        io.BytesIO(requests.get(f"{stored.url}/patients/{patient}/archive", timeout=60).content)
    ) as bundle:
        assert len(bundle.namelist()) == 5
    missing = requests.get(f"{stored.url}/studies/{public_id('none')}/archive", timeout=30)
    assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 17


def test_create_archive_of_several_resources(stored: Stored) -> None:
    first = make_series(2, patient_id="CRA1")
    second = make_series(1, patient_id="CRA2")
    answers = [post(stored.url, ds).json() for ds in first + second]
    study_one, instance_two = answers[0]["ParentStudy"], answers[2]["ID"]
    # the first study, one of its instances again (written once), and another patient's instance
    body = {"Resources": [study_one, answers[1]["ID"], instance_two]}
    response = requests.post(f"{stored.url}/tools/create-archive", json=body, timeout=60)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        uids = {str(dcmread(io.BytesIO(bundle.read(n))).SOPInstanceUID) for n in bundle.namelist()}
        assert len(bundle.namelist()) == 3
    assert uids == {str(ds.SOPInstanceUID) for ds in first + second}
    as_list = requests.post(f"{stored.url}/tools/create-archive", json=[instance_two], timeout=60)
    with zipfile.ZipFile(io.BytesIO(as_list.content)) as bundle:
        assert len(bundle.namelist()) == 1
    for bad in (
        [],
        {"Resources": "x"},
        {"Resources": [study_one], "Transcode": "1.2.840.10008.1.2.4.50"},
    ):
        response = requests.post(f"{stored.url}/tools/create-archive", json=bad, timeout=30)
        assert response.status_code == 400, bad
    unknown = requests.post(
        f"{stored.url}/tools/create-archive", json=[public_id("nobody")], timeout=30
    )
    assert unknown.status_code == 404
