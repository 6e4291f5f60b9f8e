"""``/patients|studies|series/{id}/media`` (``POST`` and ``/tools/create-media`` in
``archive_jobs.py``): a ZIP with a DICOMDIR and the stored files as ``IMAGES/IM0``,
``IMAGES/IM1``... (IHE PDI names, as Orthanc). The DICOMDIR comes from the index
(``dicomdir.py``), so it is written first and the files are streamed after it as
``/archive`` streams them: memory stays bounded."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orthanc_compat.dicomdir import ImageEntry, build_dicomdir
from orthanc_compat.keys import LEVEL_OF_PATH, add_route, archive_of, resource_id
from orthanc_compat.zip_archive import instances_and_series, stream_zip
from pacs.core.archive import Archive
from pacs.core.index.resources import Resource
from pacs.core.model import Level, StoredInstance


def _instance_numbers(archive: Archive, series_rows: list[Resource]) -> dict[str, Any]:
    """SOP Instance UID -> Instance Number, for the instances of these series."""
    numbers: dict[str, Any] = {}
    for series in series_rows:
        for row in archive.resources.descendants(Level.SERIES, series.pk, Level.IMAGE):
            numbers[str(row.values["SOPInstanceUID"])] = row.values.get("InstanceNumber")
    return numbers


def media_entries(
    archive: Archive, targets: list[tuple[Level, Resource]]
) -> list[tuple[str, StoredInstance | bytes]]:
    """``DICOMDIR`` then ``IMAGES/IM<n>`` for every instance below the targets (once each)."""
    images: list[ImageEntry] = []
    files: list[tuple[str, StoredInstance | bytes]] = []
    studies: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for level, resource in targets:
        instances, series_rows = instances_and_series(archive, level, resource)
        series_by_uid = {str(s.values["SeriesInstanceUID"]): s for s in series_rows}
        numbers = _instance_numbers(archive, series_rows)
        for stored in instances:
            series = series_by_uid.get(stored.series_uid)
            if series is None or stored.sop_uid in seen:
                continue  # stored while the media was being listed, or already written
            seen.add(stored.sop_uid)
            if stored.study_uid not in studies:
                studies[stored.study_uid] = archive.resources.ancestor(
                    Level.SERIES, series.pk, Level.STUDY
                ).values
            study = studies[stored.study_uid]
            name = f"IM{len(files)}"
            images.append(
                ImageEntry(
                    file_id=("IMAGES", name),
                    sop_class_uid=stored.sop_class_uid,
                    sop_uid=stored.sop_uid,
                    transfer_syntax=stored.transfer_syntax,
                    instance_number=numbers.get(stored.sop_uid),
                    patient=study,  # a study row carries its patient's columns
                    study=study,
                    series=series.values,
                )
            )
            files.append((f"IMAGES/{name}", stored))
    return [("DICOMDIR", build_dicomdir(images)), *files]


async def get_media(request: web.Request) -> web.StreamResponse:
    """``GET /{patients|studies|series}/{id}/media``."""
    archive = archive_of(request)
    level = LEVEL_OF_PATH[request.match_info["level"]]
    public_id = resource_id(request)
    resource = await asyncio.to_thread(archive.resources.get, level, public_id)
    entries = await asyncio.to_thread(media_entries, archive, [(level, resource)])
    return await stream_zip(request, archive, entries, f"{public_id}.zip")


def add_routes(app: web.Application) -> None:
    """Register the media routes."""
    add_route(app, "GET", "/{level:patients|studies|series}/{id}/media", get_media)
