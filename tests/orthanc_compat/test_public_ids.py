"""Public ids (Orthanc's): the hash, stored on insert, backfilled for rows indexed before."""

from __future__ import annotations

from pacs.core.archive import Archive
from pacs.core.ids import public_id
from pacs.core.index.public_ids import backfill_public_ids
from pacs.core.model import Level
from tests.factories import make_image, make_series, new_uid, to_bytes

# Ids given by a real Orthanc 1.10.1 to PatientID PAT001, study 1.2.3.4, series 1.2.3.4.5,
# instance 1.2.3.4.5.6 (POST /instances answer).
ORTHANC_PATIENT = "fbac6349-6dfbb3d4-713f5301-f07de821-04ec891e"
ORTHANC_STUDY = "3a8b9c82-69985692-92288d6d-956cadbc-3a818eb8"
ORTHANC_SERIES = "0fe44c0c-a2585072-315a043e-262f1812-9791ad21"
ORTHANC_INSTANCE = "781146e6-8ccc674d-4ab44291-35e9dccb-b0941dd4"


def test_public_id_is_orthancs() -> None:
    assert public_id("PAT001") == ORTHANC_PATIENT
    assert public_id("PAT001", "1.2.3.4") == ORTHANC_STUDY
    assert public_id("PAT001", "1.2.3.4", "1.2.3.4.5") == ORTHANC_SERIES
    assert public_id("PAT001", "1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6") == ORTHANC_INSTANCE


def test_ids_are_stored_on_insert(archive: Archive) -> None:
    ds = make_image(
        patient_id="PAT001", study_uid="1.2.3.4", series_uid="1.2.3.4.5", sop_uid="1.2.3.4.5.6"
    )
    archive.store(to_bytes(ds), "test")
    resources = archive.resources
    instance = resources.get(Level.IMAGE, ORTHANC_INSTANCE)
    assert instance.parent_id == ORTHANC_SERIES
    assert resources.get(Level.SERIES, ORTHANC_SERIES).parent_id == ORTHANC_STUDY
    assert resources.get(Level.STUDY, ORTHANC_STUDY).parent_id == ORTHANC_PATIENT
    assert resources.get(Level.PATIENT, ORTHANC_PATIENT).values["PatientID"] == "PAT001"


def test_study_kept_under_first_patient_keeps_its_ids(archive: Archive) -> None:
    study, series = new_uid(), new_uid()
    first = make_image(patient_id="FIRST", study_uid=study, series_uid=series)
    other = make_image(patient_id="OTHER", study_uid=study, series_uid=new_uid())
    archive.store(to_bytes(first), "test")
    archive.store(to_bytes(other), "test")
    study_id = public_id("FIRST", study)
    children = archive.resources.children(
        Level.STUDY, [archive.resources.get(Level.STUDY, study_id).pk]
    )
    assert len(next(iter(children.values()))) == 2
    instance_id = public_id("FIRST", study, str(other.SeriesInstanceUID), str(other.SOPInstanceUID))
    assert archive.resources.get(Level.IMAGE, instance_id).values["SOPInstanceUID"] == str(
        other.SOPInstanceUID
    )


def test_backfill_fills_rows_without_ids(archive: Archive) -> None:
    series = make_series(2, patient_id="P9")
    for ds in series:
        archive.store(to_bytes(ds), "test")
    conn = archive.index.database.connect()
    try:
        for table in ("patients", "studies", "series", "instances"):
            conn.execute(f"UPDATE {table} SET public_id = NULL")
        assert backfill_public_ids(conn) == 1 + 1 + 1 + 2
        assert backfill_public_ids(conn) == 0
    finally:
        conn.close()
    ds = series[1]
    expected = public_id(
        "P9", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    )
    assert archive.resources.get(Level.IMAGE, expected).values["InstanceNumber"] == 2


def test_browsing_pages_children_and_ancestors(archive: Archive) -> None:
    study = new_uid()
    datasets = make_series(3, study_uid=study, patient_id="P1") + make_series(
        2, study_uid=study, patient_id="P1"
    )
    for ds in datasets:
        archive.store(to_bytes(ds), "test")
    resources = archive.resources
    assert len(resources.public_ids(Level.IMAGE)) == 5
    assert len(resources.page(Level.IMAGE, since=1, limit=3)) == 3
    assert len(resources.page(Level.IMAGE, since=4, limit=3)) == 1
    study_row = resources.get(Level.STUDY, public_id("P1", study))
    assert len(resources.descendants(Level.STUDY, study_row.pk, Level.IMAGE)) == 5
    assert len(resources.descendants(Level.STUDY, study_row.pk, Level.SERIES)) == 2
    first = resources.page(Level.IMAGE, limit=1)[0]
    assert resources.ancestor(Level.IMAGE, first.pk, Level.PATIENT).public_id == public_id("P1")
    found = resources.lookup(study)
    assert found == [(Level.STUDY, study_row.public_id)]
    assert {lv for lv, _ in resources.lookup("P1")} == {Level.PATIENT}
    assert resources.last_change_seq() > 0
