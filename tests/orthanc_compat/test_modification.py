"""``Modification.apply`` on data sets in memory: references deep in sequences, the RT
structure set's study reference, what clearing means inside a sequence."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from orthanc_compat.errors import OrthancError
from orthanc_compat.modification import parse_anonymize, parse_modify
from pacs.core.model import Level
from tests.factories import make_image


def rt_structure_set() -> Dataset:
    """An RT-like object: a study referenced by ReferencedSOPInstanceUID (as RT structure
    sets do), a series and an image referenced two and three sequences deep."""
    ds = make_image(patient_id="RT1", rows=2, columns=2, modality="RTSTRUCT")
    image = Dataset()
    image.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    image.PersonName = "Inner^Name"  # cleared by the profile: a string, so emptied
    image.SliceThickness = "2.5"
    series = Dataset()
    series.SeriesInstanceUID = ds.SeriesInstanceUID
    series.ContourImageSequence = Sequence([image])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.1137.88"
    frame.RTReferencedStudySequence = Sequence([study])
    ds.FrameOfReferenceUID = frame.FrameOfReferenceUID
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    return ds


def test_references_deep_in_sequences_follow_the_new_uids() -> None:
    ds = rt_structure_set()
    modification = parse_anonymize({}, lambda: "Anonymized1")
    modification.apply(ds)
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    study = frame.RTReferencedStudySequence[0]
    series = study.RTReferencedSeriesSequence[0]
    image = series.ContourImageSequence[0]
    assert frame.FrameOfReferenceUID == ds.FrameOfReferenceUID != "1.2.826.0.1.3680043.10.1137.88"
    assert study.ReferencedSOPInstanceUID == ds.StudyInstanceUID  # mapped as a study
    assert series.SeriesInstanceUID == ds.SeriesInstanceUID
    assert image.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert image.PersonName == "" and image.SliceThickness == 2.5
    assert ds.PatientName == "Anonymized1" and ds.PatientIdentityRemoved == "YES"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_the_same_uid_maps_alike_across_instances_of_a_request() -> None:
    modification = parse_anonymize({}, lambda: "Anonymized1")
    first, second = rt_structure_set(), rt_structure_set()
    second.StudyInstanceUID = first.StudyInstanceUID
    modification.apply(first)
    modification.apply(second)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.PatientID == second.PatientID


def test_modify_leaves_references_alone() -> None:
    ds = rt_structure_set()
    original_study = ds.StudyInstanceUID
    modification = parse_modify({"Replace": {"StudyDescription": "RT"}}, Level.SERIES)
    modification.apply(ds)
    assert ds.StudyInstanceUID == original_study  # a series' modification keeps its study
    study = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == original_study
    assert ds.StudyDescription == "RT"


def test_a_multi_valued_uid_gets_one_new_uid_per_value() -> None:
    ds = make_image(rows=2, columns=2)
    ds.FailedSOPInstanceUIDList = ["1.2.3.1", "1.2.3.2"]
    parse_anonymize({}, lambda: "A1").apply(ds)
    values = list(ds.FailedSOPInstanceUIDList)
    assert len(set(values)) == 2 and not set(values) & {"1.2.3.1", "1.2.3.2"}


def test_paths_into_sequences() -> None:
    ds = rt_structure_set()
    body = {
        "Keep": ["ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence"],
        "Replace": {"ReferencedFrameOfReferenceSequence[*].FrameOfReferenceUID": "1.2.3.4"},
    }
    modification = parse_anonymize(body, lambda: "A1")
    original_study = ds.StudyInstanceUID
    modification.apply(ds)
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == "1.2.3.4"
    study = frame.RTReferencedStudySequence[0]  # kept: nothing below it changed
    assert study.ReferencedSOPInstanceUID == original_study
    image = study.RTReferencedSeriesSequence[0].ContourImageSequence[0]
    assert image.PersonName == "Inner^Name"
    remover = parse_modify(
        {"Remove": ["ReferencedFrameOfReferenceSequence[1].0008,0100"]}, Level.STUDY
    )
    assert remover.remove_paths and not remover.remove


def test_malformed_paths_are_refused() -> None:
    for name in ("ReferencedImageSequence.ReferencedSOPInstanceUID", "Nope[0].PatientName"):
        try:
            parse_anonymize({"Remove": [name]}, lambda: "A1")
        except OrthancError as exc:
            assert exc.http_status == 400
        else:
            raise AssertionError(f"{name} accepted")
