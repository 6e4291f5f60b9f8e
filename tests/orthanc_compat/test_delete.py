"""Deleting resources: index rows, blobs and change feed; emptied parents go too."""

from __future__ import annotations

import pytest
import requests

from pacs.core.archive import Archive
from pacs.core.errors import NotFound
from pacs.core.ids import public_id
from pacs.core.model import Level
from tests.factories import make_series, new_uid, to_bytes
from tests.orthanc_compat.conftest import Stored, post


def _ids(ds: object) -> tuple[str, str, str, str]:
    p = str(ds.PatientID)  # type: ignore[attr-defined]
    st = str(ds.StudyInstanceUID)  # type: ignore[attr-defined]
    se = str(ds.SeriesInstanceUID)  # type: ignore[attr-defined]
    sop = str(ds.SOPInstanceUID)  # type: ignore[attr-defined]
    return public_id(p), public_id(p, st), public_id(p, st, se), public_id(p, st, se, sop)


def test_delete_instance_then_the_last_one(archive: Archive) -> None:
    series = make_series(2, patient_id="D1")
    for ds in series:
        archive.store(to_bytes(ds), "test")
    patient, study, series_id, first = _ids(series[0])
    blob = archive.instance(str(series[0].SOPInstanceUID)).blob_key
    deletion = archive.delete(Level.IMAGE, first)
    assert deletion.remaining == (Level.SERIES, series_id)
    assert archive.blobs.exists(blob)  # in the trash until the grace period ends
    archive.trash.purge(deletion.deletion_id, expired_only=False)
    assert not archive.blobs.exists(blob)
    with pytest.raises(NotFound):
        archive.instance(str(series[0].SOPInstanceUID))
    assert archive.statistics()["instances"] == 1
    last = _ids(series[1])[3]
    assert archive.delete(Level.IMAGE, last).remaining is None
    assert archive.statistics() == {
        "patients": 0,
        "studies": 0,
        "series": 0,
        "instances": 0,
        "total_size": 0,
    }
    deleted = [c for c in archive.changes(0, 1000) if c["type"] == "Deleted"]
    assert [c["level"] for c in deleted] == ["IMAGE", "IMAGE", "SERIES", "STUDY", "PATIENT"]
    with pytest.raises(NotFound):
        archive.delete(Level.IMAGE, last)
    assert patient and study


def test_delete_study_keeps_the_patients_other_study(archive: Archive) -> None:
    one = make_series(2, patient_id="D2", study_uid=new_uid())
    two = make_series(1, patient_id="D2", study_uid=new_uid())
    for ds in one + two:
        archive.store(to_bytes(ds), "test")
    patient, study, _, _ = _ids(one[0])
    deletion = archive.delete(Level.STUDY, study)
    assert deletion.remaining == (Level.PATIENT, patient)
    assert deletion.instances == 2 and deletion.blob_keys == []  # blobs kept in the trash
    assert archive.statistics()["instances"] == 1
    assert archive.resources.get(Level.PATIENT, patient).public_id == patient
    # storing the deleted study again works (nothing left behind in the index)
    archive.store(to_bytes(one[0]), "test")
    assert archive.statistics()["studies"] == 2


def test_delete_over_http(stored: Stored) -> None:
    series = make_series(2, patient_id="DELHTTP")
    for ds in series:
        assert post(stored.url, ds).status_code == 200
    patient, study, series_id, first = _ids(series[0])
    response = requests.delete(f"{stored.url}/instances/{first}", timeout=30)
    assert response.json() == {
        "RemainingAncestor": {"ID": series_id, "Path": f"/series/{series_id}", "Type": "Series"}
    }
    assert requests.get(f"{stored.url}/instances/{first}", timeout=30).status_code == 404
    response = requests.delete(f"{stored.url}/patients/{patient}", timeout=30)
    assert response.json() == {"RemainingAncestor": None}
    assert requests.get(f"{stored.url}/studies/{study}", timeout=30).status_code == 404
    again = requests.delete(f"{stored.url}/patients/{patient}", timeout=30)
    assert again.status_code == 404 and again.json()["OrthancStatus"] == 17
    changes = requests.get(f"{stored.url}/changes?limit=10000", timeout=30).json()["Changes"]
    assert all(c["ID"] != first for c in changes)  # like Orthanc: gone with the resource
