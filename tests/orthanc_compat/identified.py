"""A two-series study full of identifying attributes, made in code, for anonymization tests."""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from orthanc_compat.anonymize_tables import PROFILES
from tests.factories import make_image, new_uid

PRIVATE_CREATOR = 0x00090010
PRIVATE_VALUE = 0x00091001
# A value of each VR (UIDs get one shared value: the anonymizer must map it consistently).
DUMMY = {
    "AE": "STATION1",
    "AS": "042Y",
    "CS": "SECRET",
    "DA": "19991231",
    "DS": "12.5",
    "DT": "19991231120000",
    "IS": "7",
    "LO": "secret long",
    "LT": "secret text",
    "PN": "Secret^Person",
    "SH": "secret",
    "ST": "secret text",
    "TM": "120000",
    "UC": "secret",
    "UI": "1.2.826.0.1.3680043.10.1137.999.1",
    "UR": "http://example.invalid/secret",
    "UT": "secret text",
    "US": 1,
    "SS": 1,
    "UL": 1,
    "SL": 1,
    "FL": 1.0,
    "FD": 1.0,
    "OB": b"\x01\x02",
}
HANDLED_ELSEWHERE = {0x00100010, 0x00100020, 0x0020000D, 0x0020000E, 0x00080018, 0x00080005}


def profile_tags() -> list[int]:
    """Every tag of the 2017c and 2021b tables that a file can carry with a simple value."""
    tags: set[int] = set()
    for profile in PROFILES.values():
        tags |= profile.remove | profile.clear | profile.uid
    usable = []
    for tag in sorted(tags - HANDLED_ELSEWHERE):
        if tag >> 16 in (0x0000, 0x0002, 0x0004):
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ" or vr in DUMMY:
            usable.append(tag)
    return usable


def _code_item() -> Dataset:
    item = Dataset()
    item.CodeValue = "X1"
    item.CodeMeaning = "secret meaning"
    item.PersonName = "Inner^Secret"  # a cleared attribute inside a sequence
    item.add_new(PRIVATE_CREATOR, "LO", "ACME")
    item.add_new(PRIVATE_VALUE, "LO", "inner private")
    return item


def _identify(ds: Dataset) -> None:
    """Put every profile attribute on the data set, and a private block."""
    for tag in profile_tags():
        if tag in ds:
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        ds.add_new(tag, vr, Sequence([_code_item()]) if vr == "SQ" else DUMMY[vr])
    ds.add_new(PRIVATE_CREATOR, "LO", "ACME")
    ds.add_new(PRIVATE_VALUE, "LO", "private secret")


def identified_study(patient_id: str = "ANON001") -> list[Dataset]:
    """Two series (two and one instances) of one study; the second series references the
    first series' instances in ReferencedImageSequence and SourceImageSequence, and every
    instance shares one FrameOfReferenceUID."""
    study_uid, frame_uid = new_uid(), new_uid()
    first = [new_uid(), new_uid()]
    common: dict[str, Any] = {
        "patient_id": patient_id,
        "patient_name": "Nguyen^Van A",
        "study_uid": study_uid,
        "rows": 4,
        "columns": 4,
        "InstitutionName": "Bach Mai",
        "StudyDescription": "CT CHEST",
        "OperatorsName": "Op^One",
        "FrameOfReferenceUID": frame_uid,
    }
    series_one = new_uid()
    instances = [
        make_image(series_uid=series_one, sop_uid=uid, instance_number=n + 1, **common)
        for n, uid in enumerate(first)
    ]
    refs = []
    for uid in first:
        ref = Dataset()
        ref.ReferencedSOPClassUID = instances[0].SOPClassUID
        ref.ReferencedSOPInstanceUID = uid
        refs.append(ref)
    derived = make_image(series_uid=new_uid(), series_number=2, instance_number=1, **common)
    derived.ReferencedImageSequence = Sequence(refs)
    derived.SourceImageSequence = Sequence([refs[0]])
    instances.append(derived)
    for ds in instances:
        _identify(ds)
    return instances
