"""The ``POST`` routes that make a ZIP (``/{level}/{id}/archive|media``,
``/tools/create-archive|create-media``): streamed at once, or, with ``"Asynchronous": true``,
an ``Archive`` / ``Media`` job that writes the ZIP to a file under the jobs' output folder
(the same writer as the streamed answer: one instance at a time, bounded memory), downloaded
with ``GET /jobs/{id}/archive``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from orthanc_compat.errors import BAD_REQUEST, OrthancError
from orthanc_compat.jobs import JOBS, Job, JobOutput, run_job, synchronous
from orthanc_compat.keys import LEVEL_OF_PATH, add_route, archive_of, resource_id
from orthanc_compat.media import media_entries
from orthanc_compat.zip_archive import (
    archive_entries,
    find_any_level,
    stream_zip,
    write_entries,
)
from pacs.core.archive import Archive
from pacs.core.index.resources import Resource
from pacs.core.model import Level, StoredInstance

Entries = Sequence[tuple[str, StoredInstance | bytes]]
EntryMaker = Callable[[Archive, list[tuple[Level, Resource]]], Entries]
MEGA = 1024 * 1024
_MAKERS: dict[str, tuple[str, EntryMaker]] = {  # path word -> (job type, entries)
    "archive": ("Archive", archive_entries),
    "media": ("Media", media_entries),
}
_OPTIONS = {  # Orthanc's options; Priority, UserData, LossyQuality, Utf8: accepted, ignored
    "Asynchronous",
    "Synchronous",
    "Filename",
    "Priority",
    "Resources",
    "Transcode",
    "Extended",
    "UserData",
    "LossyQuality",
    "Utf8",
}


async def _options(request: web.Request) -> dict[str, Any]:
    """The JSON object of the request (an empty body is ``{}``; a bare list is
    ``{"Resources": [...]}``); 400 for anything else or for options not served."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OrthancError(400, BAD_REQUEST, f"the body must be JSON: {exc}") from None
    if isinstance(body, list):
        body = {"Resources": body}
    if not isinstance(body, dict):
        raise OrthancError(400, BAD_REQUEST, "the body must be a JSON object")
    if body.get("Transcode"):
        raise OrthancError(400, BAD_REQUEST, "Transcode is not supported: files go as stored")
    if body.get("Extended"):
        raise OrthancError(400, BAD_REQUEST, "Extended (DICOMDIR keys) is not supported")
    name = body.get("Filename", "")
    if not isinstance(name, str) or '"' in name or not (name.isascii() and name.isprintable()):
        raise OrthancError(400, BAD_REQUEST, "Filename: printable ASCII, no quotes")
    unknown = sorted(set(body) - _OPTIONS)
    if unknown:
        raise OrthancError(400, BAD_REQUEST, f"unknown options: {', '.join(unknown)}")
    return body


def _content(entries: Sequence[tuple[str, StoredInstance | bytes]]) -> dict[str, Any]:
    """Orthanc's ``Content`` of an archive job before it runs (sizes as stored)."""
    size = sum(s.size for _, s in entries if isinstance(s, StoredInstance))
    count = sum(1 for _, s in entries if isinstance(s, StoredInstance))
    return {
        "ArchiveSize": "0",
        "ArchiveSizeMB": 0,
        "Description": "REST API",
        "InstancesCount": count,
        "UncompressedSize": str(size),
        "UncompressedSizeMB": size // MEGA,
    }


def _zip_work(
    archive: Archive, entries: Entries, request: web.Request, filename: str
) -> Callable[[Job], None]:
    """The work of an archive job: the ZIP written to ``<output folder>/<job id>-archive``
    (through a ``.part`` file, renamed when complete), its sizes in the job's content."""
    registry = request.app[JOBS]

    def work(job: Job) -> None:
        final = registry.output_path(job, "archive")
        partial = final.with_name(final.name + ".part")
        total = len(entries)
        try:
            with open(partial, "wb") as target:
                written = write_entries(
                    archive, entries, target, lambda done: job.report(done, total)
                )
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        size = final.stat().st_size
        job.content.update(
            ArchiveSize=str(size),
            ArchiveSizeMB=size // MEGA,
            UncompressedSize=str(written),
            UncompressedSizeMB=written // MEGA,
        )
        job.outputs["archive"] = JobOutput(final, "application/zip", filename)

    return work


async def _answer(
    request: web.Request,
    kind: str,
    targets: list[tuple[Level, Resource]],
    options: dict[str, Any],
    filename: str,
) -> web.StreamResponse:
    """Stream the ZIP, or start its job and answer ``{"ID", "Path"}``."""
    archive = archive_of(request)
    job_type, make = _MAKERS[kind]
    entries = await asyncio.to_thread(make, archive, targets)
    if synchronous(options):
        return await stream_zip(request, archive, entries, options.get("Filename") or filename)
    work = _zip_work(archive, entries, request, options.get("Filename") or "archive.zip")
    return await run_job(request, job_type, _content(entries), work, synchronous=False)


async def post_resource_zip(request: web.Request) -> web.StreamResponse:
    """``POST /{patients|studies|series}/{id}/archive|media``: ``{}`` streams the ZIP (as
    ``GET``), ``{"Asynchronous": true}`` makes it a job."""
    options = await _options(request)
    if "Resources" in options:
        raise OrthancError(400, BAD_REQUEST, "Resources belongs to /tools/create-archive")
    level = LEVEL_OF_PATH[request.match_info["level"]]
    public_id = resource_id(request)
    resource = await asyncio.to_thread(archive_of(request).resources.get, level, public_id)
    kind = request.match_info["kind"]
    return await _answer(request, kind, [(level, resource)], options, f"{public_id}.zip")


async def create_zip(request: web.Request) -> web.StreamResponse:
    """``POST /tools/create-archive|create-media``: ``["id", ...]`` or ``{"Resources": [...],
    "Asynchronous"}``, ids of any levels."""
    options = await _options(request)
    ids = options.get("Resources")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise OrthancError(400, BAD_REQUEST, "expected a list of resource ids")
    targets = await asyncio.to_thread(find_any_level, archive_of(request), ids)
    return await _answer(request, request.match_info["kind"], targets, options, "Archive.zip")


def add_routes(app: web.Application) -> None:
    """Register the ZIP-making ``POST`` routes."""
    add_route(
        app, "POST", "/{level:patients|studies|series}/{id}/{kind:archive|media}", post_resource_zip
    )
    add_route(app, "POST", "/tools/create-{kind:archive|media}", create_zip)
