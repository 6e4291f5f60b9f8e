"""QIDO-RS (PS3.18 10.6): search parameters to a core Query, answers to DICOM JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import Tag

from pacs.core.errors import InvalidQuery
from pacs.core.ids import is_acceptable_uid
from pacs.core.model import Level
from pacs.core.query import Query, kind_for_vr

# Attributes returned by default (PS3.18 Table 6.7.1-2, -2a, -2b), plus the unique keys of
# the levels above, which viewers need to build their hierarchy.
DEFAULT_KEYS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "StudyDescription",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "Modality",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "StudyInstanceUID",
        "BodyPartExamined",
    ),
    Level.IMAGE: (
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
        "StudyInstanceUID",
        "SeriesInstanceUID",
    ),
}
# What includefield=all adds to the defaults.
ALL_KEYS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: ("IssuerOfPatientID", "SOPClassesInStudy", "InstitutionName"),
    Level.SERIES: (
        "SeriesDate",
        "SeriesTime",
        "Laterality",
        "ProtocolName",
        "Manufacturer",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
    ),
    Level.IMAGE: (
        "ImageType",
        "PhotometricInterpretation",
        "SamplesPerPixel",
        "BitsStored",
        "WindowCenter",
        "WindowWidth",
        "ContentDate",
        "ContentTime",
    ),
}
_CONTROL_PARAMETERS = frozenset({"includefield", "limit", "offset", "fuzzymatching"})
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
MAX_LIMIT = 100_000


def keyword_of(attribute: str) -> str:
    """A QIDO attribute ID (keyword or 8-hex-digit tag) as a keyword; InvalidQuery if unknown."""
    if _HEX_TAG.match(attribute):
        keyword = keyword_for_tag(Tag(int(attribute, 16)))
    else:
        keyword = attribute if tag_for_keyword(attribute) is not None else ""
    if not keyword:
        raise InvalidQuery(
            f"unknown attribute {attribute!r} (nested sequence keys are not supported)"
        )
    return keyword


def _non_negative(parameters: Mapping[str, str], name: str) -> int:
    text = parameters.get(name, "0")
    if not text.isdigit():
        raise InvalidQuery(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def build_query(
    level: Level, parameters: list[tuple[str, str]], path_uids: Mapping[str, str]
) -> Query:
    """The core Query for a QIDO-RS request (path UIDs already validated by the caller)."""
    filters: dict[str, str] = {}
    kinds = {}
    keys = list(DEFAULT_KEYS[level])
    controls: dict[str, str] = {}
    for name, value in parameters:
        if name in _CONTROL_PARAMETERS:
            if name == "includefield":
                for field in filter(None, (f.strip() for f in value.split(","))):
                    if field == "all":
                        keys.extend(ALL_KEYS[level])
                    else:
                        keys.append(keyword_of(field))
            else:
                controls[name] = value
            continue
        keyword = keyword_of(name)
        keys.append(keyword)
        if value not in ("", "*"):
            filters[keyword] = value
            tag = tag_for_keyword(keyword)
            kinds[keyword] = kind_for_vr(str(dictionary_VR(tag)) if tag is not None else "LO")
    if controls.get("fuzzymatching", "false") not in ("true", "false"):
        raise InvalidQuery("fuzzymatching must be true or false")
    filters.update(path_uids)
    limit = min(_non_negative(controls, "limit"), MAX_LIMIT)
    return Query(
        level=level,
        filters=filters,
        return_keys=tuple(dict.fromkeys(keys)),
        limit=limit,
        offset=_non_negative(controls, "offset"),
        kinds=kinds,
    )


def check_uid(value: str) -> str:
    """A UID from the path; InvalidQuery when it is not one."""
    if not is_acceptable_uid(value):
        raise InvalidQuery(f"invalid UID {value[:70]!r}")
    return value
