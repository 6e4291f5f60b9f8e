"""DICOM identifiers for C-FIND and C-MOVE from Orthanc's JSON (``{"PatientID": "P*"}``)."""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from orthanc_compat.errors import (
    BAD_FILE_FORMAT,
    PARAMETER_OUT_OF_RANGE,
    UNKNOWN_DICOM_TAG,
    OrthancError,
)

# Orthanc's level names -> Query/Retrieve Level values.
LEVELS = {
    "patient": "PATIENT",
    "patients": "PATIENT",
    "study": "STUDY",
    "studies": "STUDY",
    "series": "SERIES",
    "instance": "IMAGE",
    "instances": "IMAGE",
    "image": "IMAGE",
    "images": "IMAGE",
}
DISPLAY = {"PATIENT": "Patient", "STUDY": "Study", "SERIES": "Series", "IMAGE": "Instance"}
# Return keys Orthanc adds to a query at each level (its "Normalize" option).
_LEVEL_KEYS = {
    "PATIENT": ("PatientID",),
    "STUDY": ("AccessionNumber", "PatientID", "StudyInstanceUID"),
    "SERIES": ("AccessionNumber", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": (
        "AccessionNumber",
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
    ),
}
# Keys of an answer that name it in a C-MOVE request, per level (as Orthanc sends).
_MOVE_KEYS = {
    "PATIENT": ("PatientID",),
    "STUDY": ("AccessionNumber", "PatientID", "StudyInstanceUID"),
    "SERIES": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}


def level_name(value: Any) -> str:
    """``"Study"``, ``"Studies"`` (any case) -> ``"STUDY"``; 400 "Parameter out of range"
    otherwise (Orthanc's names, plurals included)."""
    if isinstance(value, str) and value.strip().lower() in LEVELS:
        return LEVELS[value.strip().lower()]
    raise OrthancError(400, PARAMETER_OUT_OF_RANGE, f"unknown level {value!r}")


def parse_tag(key: str) -> int:
    """A keyword or ``gggg,eeee`` (``ggggeeee``) as a tag number (400 when unknown)."""
    text = key.strip().replace(",", "")
    if len(text) == 8:
        try:
            return int(text, 16)
        except ValueError:
            pass
    tag = tag_for_keyword(key.strip())
    if tag is None:
        raise OrthancError(400, UNKNOWN_DICOM_TAG, f"unknown DICOM tag {key!r}")
    return int(tag)


def dataset_of(tags: dict[str, Any], level: str, *, normalize: bool = False) -> Dataset:
    """An identifier with ``QueryRetrieveLevel`` and the given string values; with
    ``normalize`` the level's keys are added as empty return keys (as Orthanc does)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for key, value in tags.items():
        tag = parse_tag(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = "\\".join(value)
        if not isinstance(value, str):
            raise OrthancError(400, BAD_FILE_FORMAT, f"the value of {key} must be a string")
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "LO"
        if vr == "SQ":
            raise OrthancError(400, BAD_FILE_FORMAT, f"sequence {key} cannot be queried")
        ds.add_new(tag, vr, value)
    if normalize:
        for keyword in _LEVEL_KEYS[level]:
            if keyword not in ds:
                setattr(ds, keyword, "")
    return ds


def move_identifier(answer: Dataset, level: str) -> Dataset:
    """The C-MOVE identifier of one C-FIND answer: its level's identifying keys."""
    ds = Dataset()
    for keyword in _MOVE_KEYS[level]:
        if keyword in answer:
            setattr(ds, keyword, answer[keyword].value)
    ds.QueryRetrieveLevel = level
    return ds
