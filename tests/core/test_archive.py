"""The Archive over each index backend: store, find at every level, retrieve, refuse."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.errors import DuplicateInstance, InvalidDicom, MissingUniqueKey, RefusedInstance
from pacs.core.model import Level, StoreOutcome
from pacs.core.query import Query
from tests.factories import make_image, make_radiograph, make_series, new_uid, to_bytes


def _find(archive: Archive, level: Level, keys: tuple[str, ...] = (), **filters: str) -> list:
    return archive.find(Query(level=level, filters=filters, return_keys=keys))


def _uids(answers: list, keyword: str) -> set[str]:
    return {str(a.get(keyword)) for a in answers}


@pytest.fixture
def populated(archive: Archive) -> dict[str, object]:
    """Three patients, four studies, CT and CR, Vietnamese and Latin names."""
    ct = make_series(
        3,
        patient_id="079123456789",
        patient_name="Nguyễn^Văn A",
        charset="ISO_IR 192",
        study_date="20240115",
        IssuerOfPatientID="CCCD",
        InstitutionName="BV Tinh",
    )
    ct_second_series = make_series(
        2,
        patient_id="079123456789",
        patient_name="Nguyễn^Văn A",
        charset="ISO_IR 192",
        study_uid=ct[0].StudyInstanceUID,
        series_number=2,
        modality="SR",
        IssuerOfPatientID="CCCD",
    )
    cr = [
        make_radiograph(
            patient_id="BN-0042",
            patient_name="Trần^Thị Bích",
            charset="ISO_IR 192",
            study_date="20240220",
            accession="XR42",
        )
    ]
    latin = [
        make_image(
            patient_id="DE-7",
            patient_name="Müller^Jürgen",
            charset="ISO_IR 100",
            study_date="20231201",
            modality="MR",
            accession="MR7",
        )
    ]
    for ds in ct + ct_second_series + cr + latin:
        assert archive.store(to_bytes(ds), "test").outcome == StoreOutcome.STORED
    return {"ct": ct, "ct2": ct_second_series, "cr": cr, "latin": latin}


def test_study_level_with_computed_attributes(archive: Archive, populated: dict) -> None:
    answers = _find(
        archive,
        Level.STUDY,
        (
            "PatientName",
            "StudyInstanceUID",
            "NumberOfStudyRelatedInstances",
            "NumberOfStudyRelatedSeries",
            "ModalitiesInStudy",
            "SOPClassesInStudy",
        ),
        PatientID="079123456789",
    )
    assert len(answers) == 1
    study = answers[0]
    assert str(study.PatientName) == "Nguyễn^Văn A"
    assert study.NumberOfStudyRelatedInstances == 5
    assert study.NumberOfStudyRelatedSeries == 2
    assert list(study.ModalitiesInStudy) == ["CT", "SR"]
    assert study.SpecificCharacterSet == "ISO_IR 192"
    assert study.QueryRetrieveLevel == "STUDY"


@pytest.mark.parametrize("pattern", ["nguyen^van*", "NGUYEN*", "Nguyễn*", "*van a", "nguyen van a"])
def test_names_match_without_case_or_diacritics(
    archive: Archive, populated: dict, pattern: str
) -> None:
    answers = _find(archive, Level.PATIENT, ("PatientName", "PatientID"), PatientName=pattern)
    assert _uids(answers, "PatientID") == {"079123456789"}


def test_legacy_character_set_round_trips(archive: Archive, populated: dict) -> None:
    answers = _find(archive, Level.PATIENT, ("PatientName",), PatientName="muller*")
    assert [str(a.PatientName) for a in answers] == ["Müller^Jürgen"]


def test_patient_level_counts_and_issuer(archive: Archive, populated: dict) -> None:
    answers = _find(
        archive,
        Level.PATIENT,
        (
            "PatientID",
            "IssuerOfPatientID",
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances",
        ),
        PatientID="079123456789",
    )
    assert len(answers) == 1
    assert answers[0].IssuerOfPatientID == "CCCD"
    assert answers[0].NumberOfPatientRelatedStudies == 1
    assert answers[0].NumberOfPatientRelatedSeries == 2
    assert answers[0].NumberOfPatientRelatedInstances == 5


def test_date_ranges_and_universal_matching(archive: Archive, populated: dict) -> None:
    assert len(_find(archive, Level.STUDY, ("StudyDate",))) == 3
    january_on = _find(archive, Level.STUDY, ("AccessionNumber",), StudyDate="20240101-")
    assert len(january_on) == 2
    until_2023 = _find(archive, Level.STUDY, ("AccessionNumber",), StudyDate="-20231231")
    assert _uids(until_2023, "AccessionNumber") == {"MR7"}
    february = _find(archive, Level.STUDY, ("AccessionNumber",), StudyDate="20240201-20240229")
    assert _uids(february, "AccessionNumber") == {"XR42"}


def test_uid_lists_and_wildcards(archive: Archive, populated: dict) -> None:
    ct, cr = populated["ct"], populated["cr"]
    wanted = f"{ct[0].StudyInstanceUID}\\{cr[0].StudyInstanceUID}"
    answers = _find(archive, Level.STUDY, ("StudyInstanceUID",), StudyInstanceUID=wanted)
    assert len(answers) == 2
    assert len(_find(archive, Level.STUDY, (), AccessionNumber="XR*")) == 1
    assert len(_find(archive, Level.STUDY, (), AccessionNumber="M?7")) == 1
    assert _find(archive, Level.STUDY, (), AccessionNumber="xr*") == []


def test_series_and_image_levels(archive: Archive, populated: dict) -> None:
    ct = populated["ct"]
    series = _find(
        archive,
        Level.SERIES,
        ("SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"),
        StudyInstanceUID=ct[0].StudyInstanceUID,
    )
    by_modality = {str(s.Modality): s for s in series}
    assert set(by_modality) == {"CT", "SR"}
    assert by_modality["CT"].NumberOfSeriesRelatedInstances == 3
    images = _find(
        archive,
        Level.IMAGE,
        ("SOPInstanceUID", "InstanceNumber"),
        SeriesInstanceUID=ct[0].SeriesInstanceUID,
    )
    assert _uids(images, "SOPInstanceUID") == {str(ds.SOPInstanceUID) for ds in ct}
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2, 3]


def test_modalities_in_study_filter(archive: Archive, populated: dict) -> None:
    assert _uids(
        _find(archive, Level.STUDY, ("AccessionNumber",), ModalitiesInStudy="CR"), "AccessionNumber"
    ) == {"XR42"}
    both = _find(archive, Level.STUDY, (), ModalitiesInStudy="CR\\MR")
    assert len(both) == 2


def test_unindexed_attributes_match_and_return(archive: Archive, populated: dict) -> None:
    answers = _find(archive, Level.IMAGE, ("InstitutionName", "Rows"), InstitutionName="BV*")
    assert len(answers) == 3
    assert all(a.InstitutionName == "BV Tinh" and a.Rows == 16 for a in answers)


def test_keys_below_the_level_come_back_empty(archive: Archive, populated: dict) -> None:
    answers = _find(
        archive, Level.STUDY, ("SOPInstanceUID", "StudyDescription"), AccessionNumber="XR42"
    )
    assert answers[0].SOPInstanceUID in ("", None)
    assert answers[0].StudyDescription == "CHEST PA"


def test_limit_and_offset(archive: Archive, populated: dict) -> None:
    every = archive.find(Query(level=Level.IMAGE, return_keys=("SOPInstanceUID",)))
    page = archive.find(
        Query(level=Level.IMAGE, return_keys=("SOPInstanceUID",), limit=2, offset=1)
    )
    assert len(every) == 7
    assert [str(a.SOPInstanceUID) for a in page] == [str(a.SOPInstanceUID) for a in every[1:3]]


def test_instances_matching_for_retrieve(archive: Archive, populated: dict) -> None:
    ct = populated["ct"]
    found = archive.instances_matching(
        Query(level=Level.STUDY, filters={"StudyInstanceUID": str(ct[0].StudyInstanceUID)})
    )
    assert len(found) == 5
    first = found[0]
    assert archive.read_instance(first)[128:132] == b"DICM"


def test_bytes_are_kept_exactly(archive: Archive) -> None:
    raw = to_bytes(make_image())
    result = archive.store(raw, "test")
    stored = archive.instance(result.summary.sop_uid)
    assert archive.read_instance(stored) == raw
    assert stored.size == len(raw)


def test_bare_data_set_gets_file_meta(archive: Archive) -> None:
    raw = to_bytes(make_image())
    bare = raw[raw.index(b"DICM") + 4 :]
    meta_length = int.from_bytes(bare[8:12], "little")
    dataset_bytes = bare[12 + meta_length :]
    result = archive.store(dataset_bytes, "test")
    kept = archive.read_instance(archive.instance(result.summary.sop_uid))
    assert kept[128:132] == b"DICM"
    assert kept.endswith(dataset_bytes)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", InvalidDicom),
        (b"not dicom at all" * 10, InvalidDicom),
        (to_bytes(make_image())[:200], InvalidDicom),
    ],
)
def test_malformed_input_is_refused(archive: Archive, payload: bytes, error: type) -> None:
    with pytest.raises(error):
        archive.store(payload, "test")
    assert archive.statistics()["instances"] == 0


def test_missing_unique_key_is_refused(archive: Archive) -> None:
    ds = make_image()
    del ds.SeriesInstanceUID
    with pytest.raises(MissingUniqueKey):
        archive.store(to_bytes(ds), "test")
    bad = make_image(study_uid="1.2.abc")
    with pytest.raises(MissingUniqueKey):
        archive.store(to_bytes(bad), "test")


def test_absurd_image_size_is_refused(tmp_path: Path, index_url: str) -> None:
    from storage import FileSystemBlobStore

    archive = Archive.open(index_url, FileSystemBlobStore(tmp_path / "b2"), max_pixels=10**8)
    try:
        ds = make_image()
        ds.Rows = 65535
        ds.Columns = 65535
        with pytest.raises(RefusedInstance):
            archive.store(to_bytes(ds), "test")
    finally:
        archive.close()


def _blob_files(archive: Archive) -> list[str]:
    return list(archive.blobs.keys())


@pytest.mark.parametrize("policy", ["ignore", "replace", "reject"])
def test_duplicate_policies(tmp_path: Path, index_url: str, policy: str) -> None:
    from storage import FileSystemBlobStore

    archive = Archive.open(index_url, FileSystemBlobStore(tmp_path / "b3"), duplicate_policy=policy)
    try:
        first = make_image(instance_number=1)
        second = make_image(
            instance_number=7,
            sop_uid=first.SOPInstanceUID,
            study_uid=first.StudyInstanceUID,
            series_uid=first.SeriesInstanceUID,
        )
        archive.store(to_bytes(first), "test")
        if policy == "reject":
            with pytest.raises(DuplicateInstance):
                archive.store(to_bytes(second), "test")
        else:
            outcome = archive.store(to_bytes(second), "test").outcome
            assert outcome == (
                StoreOutcome.DUPLICATE_IGNORED if policy == "ignore" else StoreOutcome.REPLACED
            )
        kept = archive.read_instance(archive.instance(str(first.SOPInstanceUID)))
        expected = to_bytes(second) if policy == "replace" else to_bytes(first)
        assert kept == expected
        assert len(_blob_files(archive)) == 1  # no orphan blob either way
    finally:
        archive.close()


def test_index_failure_leaves_no_blob(archive: Archive) -> None:
    first = make_image()
    archive.store(to_bytes(first), "test")
    # The same series UID under another study is refused by the index, after the blob write.
    clash = make_image(series_uid=first.SeriesInstanceUID, study_uid=new_uid())
    with pytest.raises(InvalidDicom):
        archive.store(to_bytes(clash), "test")
    assert len(_blob_files(archive)) == 1
    assert archive.statistics()["instances"] == 1


def test_concurrent_stores_are_all_indexed(archive: Archive) -> None:
    study = new_uid()
    datasets = [
        make_image(study_uid=study, series_uid=new_uid(), instance_number=n) for n in range(40)
    ]
    errors: list[Exception] = []

    def worker(chunk: list) -> None:
        try:
            for ds in chunk:
                archive.store(to_bytes(ds), "test")
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(datasets[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = archive.statistics()
    assert stats["instances"] == 40 and stats["series"] == 40 and stats["studies"] == 1


def test_change_feed(archive: Archive) -> None:
    archive.store(to_bytes(make_image()), "test")
    kinds = [c["type"] for c in archive.changes()]
    assert kinds == ["NewPatient", "NewStudy", "NewSeries", "NewInstance"]
    assert archive.changes(since=archive.changes()[-1]["seq"]) == []
