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
