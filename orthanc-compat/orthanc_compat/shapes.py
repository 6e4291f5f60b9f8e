"""Resources as Orthanc shows them: ``MainDicomTags``, parents, children, ``IsStable``...

Orthanc 1.10.1's main DICOM tags of each level come from the index columns where we have
them, and from the stored header of the resource's most recent instance for the others.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

from orthanc_compat.header_scan import from_dataset, scan
from pacs.core.archive import Archive
from pacs.core.dicom_header import parse_stored_header
from pacs.core.index.resources import Resource
from pacs.core.model import Level

STABLE_AGE = 60.0  # seconds without a new instance before a resource is stable (Orthanc's)

TYPE_NAME: dict[Level, str] = {
    Level.PATIENT: "Patient",
    Level.STUDY: "Study",
    Level.SERIES: "Series",
    Level.IMAGE: "Instance",
}
PATH_NAME: dict[Level, str] = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.IMAGE: "instances",
}
CHILDREN_KEY: dict[Level, str] = {
    Level.PATIENT: "Studies",
    Level.STUDY: "Series",
    Level.SERIES: "Instances",
}
PARENT_KEY: dict[Level, str] = {
    Level.STUDY: "ParentPatient",
    Level.SERIES: "ParentStudy",
    Level.IMAGE: "ParentSeries",
}

# Orthanc 1.10.1's main DICOM tags: those the index has in columns...
INDEXED_MAIN_TAGS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: ("PatientBirthDate", "PatientID", "PatientName", "PatientSex"),
    Level.STUDY: (
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDate",
        "StudyDescription",
        "StudyID",
        "StudyInstanceUID",
        "StudyTime",
    ),
    Level.SERIES: (
        "BodyPartExamined",
        "Modality",
        "SeriesDate",
        "SeriesDescription",
        "SeriesInstanceUID",
        "SeriesNumber",
        "SeriesTime",
    ),
    Level.IMAGE: ("InstanceNumber", "SOPInstanceUID"),
}
# ... and those read from the stored header.
HEADER_MAIN_TAGS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: ("OtherPatientIDs",),
    Level.STUDY: ("InstitutionName", "RequestedProcedureDescription", "RequestingPhysician"),
    Level.SERIES: (
        "AcquisitionDeviceProcessingDescription",
        "CardiacNumberOfImages",
        "ContrastBolusAgent",
        "ImageOrientationPatient",
        "ImagesInAcquisition",
        "Manufacturer",
        "NumberOfSlices",
        "NumberOfTemporalPositions",
        "NumberOfTimeSlices",
        "OperatorsName",
        "PerformedProcedureStepDescription",
        "ProtocolName",
        "SequenceName",
        "SeriesType",
        "StationName",
    ),
    Level.IMAGE: (
        "AcquisitionNumber",
        "ImageIndex",
        "ImageOrientationPatient",
        "ImagePositionPatient",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "NumberOfFrames",
        "TemporalPositionIdentifier",
    ),
}


def orthanc_time(seconds: float) -> str:
    """``20240115T101500`` (UTC), Orthanc's date format."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))


def _column_tags(level: Level, values: dict[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for keyword in INDEXED_MAIN_TAGS[level]:
        value = values.get(keyword)
        if value not in (None, ""):
            tags[keyword] = str(value)
    return tags


def _header_keywords(level: Level) -> tuple[str, ...]:
    """The header attributes a resource of this level shows (a study: its patient's too)."""
    keywords = HEADER_MAIN_TAGS[level]
    if level == Level.STUDY:
        keywords += HEADER_MAIN_TAGS[Level.PATIENT]
    if level == Level.SERIES:
        keywords += ("ImagesInAcquisition", "CardiacNumberOfImages")
    return tuple(sorted(set(keywords)))


def _header_tags(level: Level, header: dict[str, str]) -> dict[str, str]:
    return {k: header[k] for k in HEADER_MAIN_TAGS[level] if k in header}


class _BoundedCache:
    """A thread-safe LRU of scanned headers, keyed by the header bytes' hash and length
    (stored headers never change; a study's representative header changes with new
    instances, and then its key does)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> dict[str, str] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: dict[str, str]) -> None:
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)


_SCANNED = _BoundedCache(50_000)  # a few MB: small dicts, not the headers


class ShapeBuilder:
    """Builds the Orthanc JSON of many resources with few index reads."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def headers(self, level: Level, resources: Sequence[Resource]) -> dict[int, dict[str, str]]:
        """The header main tags of each resource, from its most recent instance's header."""
        keywords = _header_keywords(level)
        raw = self.archive.index.representative_headers(level, [r.pk for r in resources])
        charset = self.archive.text_charset()
        found: dict[int, dict[str, str]] = {}
        for pk, header in raw.items():
            key = (hash(header), len(header), keywords, charset)
            cached = _SCANNED.get(key)
            if cached is None:
                cached = scan(header, keywords, charset)
                if cached is None:  # unusual encoding: parse it properly
                    try:
                        cached = from_dataset(parse_stored_header(header, charset), keywords)
                    except Exception:  # a header that no longer parses: columns only
                        continue
                _SCANNED.put(key, cached)
            found[pk] = cached
        return found

    def expand(self, resources: Sequence[Resource]) -> list[dict[str, Any]]:
        """The full JSON of each resource (all of one level)."""
        if not resources:
            return []
        level = resources[0].level
        headers = self.headers(level, resources)
        children = self.archive.resources.children(level, [r.pk for r in resources])
        now = time.time()
        return [self._one(r, headers.get(r.pk, {}), children.get(r.pk, []), now) for r in resources]

    def _one(
        self, resource: Resource, header: dict[str, str], children: list[str], now: float
    ) -> dict[str, Any]:
        level = resource.level
        main = _column_tags(level, resource.values)
        main.update(_header_tags(level, header))
        body: dict[str, Any] = {
            "ID": resource.public_id,
            "MainDicomTags": dict(sorted(main.items())),
            "Type": TYPE_NAME[level],
        }
        if level in PARENT_KEY:
            body[PARENT_KEY[level]] = resource.parent_id
        if level in CHILDREN_KEY:
            body[CHILDREN_KEY[level]] = children
        if level != Level.IMAGE:
            body["IsStable"] = now - resource.updated_at >= STABLE_AGE
            body["LastUpdate"] = orthanc_time(resource.updated_at)
        if level == Level.STUDY:
            patient = _column_tags(Level.PATIENT, resource.values)
            patient.update(_header_tags(Level.PATIENT, header))
            body["PatientMainDicomTags"] = dict(sorted(patient.items()))
        if level == Level.SERIES:
            expected = _expected_instances(header)
            body["ExpectedNumberOfInstances"] = expected
            body["Status"] = _series_status(expected, len(children))
        if level == Level.IMAGE:
            body["FileSize"] = int(resource.extra["size"])
            body["FileUuid"] = file_uuid(str(resource.extra["blob_key"]))
            number = resource.values.get("InstanceNumber")
            body["IndexInSeries"] = int(number) if number is not None else None
        return dict(sorted(body.items()))


def _expected_instances(header: dict[str, str]) -> int | None:
    """Orthanc's guess of a series' size: Images In Acquisition or Cardiac Number of Images."""
    for keyword in ("ImagesInAcquisition", "CardiacNumberOfImages"):
        try:
            if header.get(keyword):
                return int(header[keyword])
        except ValueError:
            continue
    return None


def _series_status(expected: int | None, count: int) -> str:
    if expected is None:
        return "Unknown"
    if count == expected:
        return "Complete"
    return "Missing" if count < expected else "Inconsistent"


def file_uuid(blob_key: str) -> str:
    """A UUID for the stored file (its blob key's random part), like Orthanc's attachment id."""
    hex_part = blob_key[-32:].lower().rjust(32, "0")
    return "-".join((hex_part[:8], hex_part[8:12], hex_part[12:16], hex_part[16:20], hex_part[20:]))
