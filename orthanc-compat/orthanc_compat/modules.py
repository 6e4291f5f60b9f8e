"""``GET /{level}/{id}/module``, ``/studies/{id}/module-patient`` (the attributes of a
level's DICOM module, read from the stored header of one instance below) and
``GET /series/{id}/ordered-slices`` (the frames of a series in spatial order)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydicom.dataset import Dataset

from orthanc_compat.keys import (
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    flag,
    json_response,
    resource_id,
)
from orthanc_compat.tags import full_tags, short_tags, simplified_tags
from pacs.core.archive import Archive
from pacs.core.dicom_header import parse_stored_header
from pacs.core.model import Level

# PS3.3 Patient (C.7.1.1), General Study (C.7.2.1), General Series (C.7.3.1) and the
# identifying attributes of SOP Common / General Image (C.12.1, C.7.6.1).
MODULES: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: (
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientSex",
        "OtherPatientIDs",
        "OtherPatientNames",
        "EthnicGroup",
        "PatientComments",
    ),
    Level.STUDY: (
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDescription",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "StudyInstanceUID",
        "StudyID",
        "IssuerOfAccessionNumberSequence",
        "ReferringPhysicianIdentificationSequence",
        "ReferencedStudySequence",
        "ProcedureCodeSequence",
    ),
    Level.SERIES: (
        "SeriesDate",
        "SeriesTime",
        "Modality",
        "SeriesDescription",
        "PerformingPhysicianName",
        "OperatorsName",
        "BodyPartExamined",
        "ProtocolName",
        "PatientPosition",
        "SeriesInstanceUID",
        "SeriesNumber",
        "Laterality",
    ),
    Level.IMAGE: (
        "SpecificCharacterSet",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "InstanceCreatorUID",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceNumber",
    ),
}


def _header(archive: Archive, level: Level, public_id: str) -> Dataset:
    """The stored header of the resource's most recent instance (NotFound if unknown)."""
    resource = archive.resources.get(level, public_id)
    return parse_stored_header(
        archive.index.representative_headers(level, [resource.pk])[resource.pk],
        archive.text_charset(),
    )


def module_tags(archive: Archive, level: Level, public_id: str, module: Level) -> Dataset:
    """The attributes of ``module`` present in the resource's representative header."""
    header = _header(archive, level, public_id)
    kept = Dataset()
    for keyword in MODULES[module]:
        if keyword in header:
            kept[keyword] = header[keyword]
    return kept


def _module_handler(module: Level | None) -> Any:
    async def handler(request: web.Request) -> web.Response:
        level = LEVEL_OF_PATH[request.match_info["level"]]
        ds = await asyncio.to_thread(
            module_tags,
            archive_of(request),
            level,
            resource_id(request),
            level if module is None else module,
        )
        if flag(request, "simplify"):
            return json_response(simplified_tags(ds))
        if flag(request, "short"):
            return json_response(short_tags(ds))
        return json_response(full_tags(ds))

    return handler


def _position(header: Dataset, normal: tuple[float, float, float] | None) -> float | None:
    """The slice's position along the normal of its orientation (None when unknown)."""
    try:
        position = [float(v) for v in header.ImagePositionPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if normal is None or len(position) != 3:
        return None
    return sum(p * n for p, n in zip(position, normal, strict=True))


def _normal(header: Dataset) -> tuple[float, float, float] | None:
    try:
        r = [float(v) for v in header.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if len(r) != 6:
        return None
    return (r[1] * r[5] - r[2] * r[4], r[2] * r[3] - r[0] * r[5], r[0] * r[4] - r[1] * r[3])


def ordered_slices(archive: Archive, public_id: str) -> dict[str, Any]:
    """Orthanc's ``ordered-slices``: by position along the slice normal when every slice has
    one (``Type`` ``Volume``), else by instance number (``Sequence``)."""
    series = archive.resources.get(Level.SERIES, public_id)
    instances = archive.resources.descendants(Level.SERIES, series.pk, Level.IMAGE)
    headers = archive.index.representative_headers(Level.IMAGE, [i.pk for i in instances])
    rows = []
    charset = archive.text_charset()
    normal: tuple[float, float, float] | None = None
    for instance in instances:
        header = parse_stored_header(headers[instance.pk], charset)
        normal = normal or _normal(header)
        frames = int(header.get("NumberOfFrames", 1) or 1)
        number = instance.values.get("InstanceNumber")
        rows.append((instance.public_id, frames, _position(header, normal), number))
    volume = bool(rows) and all(position is not None for _, _, position, _ in rows)
    if volume:
        rows.sort(key=lambda row: (row[2], row[0]))
    else:
        rows.sort(key=lambda row: (row[3] is None, row[3] or 0, row[0]))
    return {
        "Dicom": [f"/instances/{i}/file" for i, _, _, _ in rows],
        "Slices": [f"/instances/{i}/frames/{f}" for i, frames, _, _ in rows for f in range(frames)],
        "SlicesShort": [[i, 0, frames] for i, frames, _, _ in rows],
        "Type": "Volume" if volume else "Sequence",
    }


async def get_ordered_slices(request: web.Request) -> web.Response:
    """``GET /series/{id}/ordered-slices``."""
    body = await asyncio.to_thread(ordered_slices, archive_of(request), resource_id(request))
    return json_response(body)


def add_routes(app: web.Application) -> None:
    """Register the module and ordered-slices routes."""
    levels = "{level:patients|studies|series|instances}"
    add_route(app, "GET", f"/{levels}/{{id}}/module", _module_handler(None))
    add_route(app, "GET", "/{level:studies}/{id}/module-patient", _module_handler(Level.PATIENT))
    add_route(app, "GET", "/series/{id}/ordered-slices", get_ordered_slices)
