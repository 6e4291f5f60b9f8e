"""Reading indexed attributes again from the stored headers (Orthanc's ``/reconstruct``),
on SQLite and PostgreSQL: after the default encoding changed, names indexed as Latin-1 are
read as UTF-8, found by C-FIND matching, and nothing else moves."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from pacs.core.archive import Archive
from pacs.core.charsets import LATIN1
from pacs.core.errors import NotFound
from pacs.core.ids import public_id
from pacs.core.model import Level
from pacs.core.query import Query
from tests.factories import make_series, to_bytes

NAME = "Phạm^Minh Đức"


def _undeclared(patient_id: str, study_uid: str | None = None) -> list[Dataset]:
    kwargs = {"study_uid": study_uid} if study_uid else {}
    datasets = make_series(2, patient_id=patient_id, patient_name=NAME.encode(), **kwargs)
    for ds in datasets:
        ds.StudyDescription = "Nội soi".encode()
    return datasets


def _study(archive: Archive, study_uid: str) -> dict[str, object]:
    query = Query(
        level=Level.STUDY,
        filters={"StudyInstanceUID": study_uid},
        return_keys=("PatientName", "StudyDescription", "PatientID"),
    )
    (answer,) = archive.find(query)
    return {"name": str(answer.PatientName), "description": answer.StudyDescription}


def test_reconstruct_reads_names_with_the_current_default(archive: Archive) -> None:
    first = _undeclared("REC-1")
    second = _undeclared("REC-2")
    for ds in first + second:
        archive.store(to_bytes(ds), "TEST")
    garbled = NAME.encode().decode("latin-1")
    study_uid = str(first[0].StudyInstanceUID)
    assert _study(archive, study_uid)["name"] == garbled
    blobs_before = {
        s.sop_uid: (s.blob_key, s.sha256)
        for s in archive.series_instances(str(first[0].SeriesInstanceUID))
    }

    archive.text_charset = lambda: "ISO_IR 192"  # as after PUT /tools/default-encoding Utf8
    assert _study(archive, study_uid)["name"] == garbled  # the index keeps its reading
    study_id = public_id("REC-1", study_uid)
    assert archive.reconstruct(Level.STUDY, study_id) == 2
    assert _study(archive, study_uid) == {"name": NAME, "description": "Nội soi"}
    matched = archive.find(
        Query(
            level=Level.STUDY,
            filters={"PatientName": "phạm*"},
            return_keys=("PatientID",),
            ignore_case=True,
        )
    )
    assert [str(a.PatientID) for a in matched] == ["REC-1"]  # the other is not re-read yet
    after = {
        s.sop_uid: (s.blob_key, s.sha256)
        for s in archive.series_instances(str(first[0].SeriesInstanceUID))
    }
    assert after == blobs_before
    assert archive.resources.get(Level.STUDY, study_id).pk  # same public id

    assert archive.reconstruct_all() == 4
    assert _study(archive, str(second[0].StudyInstanceUID))["name"] == NAME
    archive.text_charset = lambda: LATIN1
    assert archive.reconstruct(Level.PATIENT, public_id("REC-2")) == 2
    assert _study(archive, str(second[0].StudyInstanceUID))["name"] == garbled
    with pytest.raises(NotFound):
        archive.reconstruct(Level.SERIES, "not-an-id")


def test_reconstruct_leaves_the_owner_of_a_study_sent_with_another_identity(
    archive: Archive,
) -> None:
    owner = make_series(1, patient_id="OWNER", patient_name="Owner^First")
    other = make_series(
        1, patient_id="OTHER", patient_name="Other^Second", study_uid=owner[0].StudyInstanceUID
    )
    for ds in owner + other:
        archive.store(to_bytes(ds), "TEST")
    archive.reconstruct_all()
    assert _study(archive, str(owner[0].StudyInstanceUID))["name"] == "Owner^First"
