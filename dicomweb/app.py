"""The DICOMweb sub-application, mounted at /dicom-web by the composition root."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from dicomweb.json_model import answer_json
from dicomweb.qido import build_query, check_uid
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery
from pacs.core.model import Level

log = logging.getLogger("pacs.dicomweb")

ARCHIVE = web.AppKey("archive", Archive)
DICOM_JSON = "application/dicom+json"
_QUERY_RETRIEVE_LEVEL = 0x00080052


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _search(request: web.Request, level: Level) -> web.Response:
    archive = request.app[ARCHIVE]
    try:
        path_uids = {}
        if "study" in request.match_info:
            path_uids["StudyInstanceUID"] = check_uid(request.match_info["study"])
        if "series" in request.match_info:
            path_uids["SeriesInstanceUID"] = check_uid(request.match_info["series"])
        query = build_query(level, list(request.query.items()), path_uids)
        answers = await asyncio.to_thread(archive.find_answers, query)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    body = [answer_json(answer, skip=frozenset({_QUERY_RETRIEVE_LEVEL})) for answer in answers]
    return web.Response(
        text=json.dumps(body, ensure_ascii=False), content_type=DICOM_JSON, charset="utf-8"
    )


async def search_studies(request: web.Request) -> web.Response:
    """QIDO-RS /studies."""
    return await _search(request, Level.STUDY)


async def search_series(request: web.Request) -> web.Response:
    """QIDO-RS /series and /studies/{study}/series."""
    return await _search(request, Level.SERIES)


async def search_instances(request: web.Request) -> web.Response:
    """QIDO-RS /instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""
    return await _search(request, Level.IMAGE)


def build_dicomweb_app(archive: Archive) -> web.Application:
    """The DICOMweb routes over an Archive."""
    app = web.Application()
    app[ARCHIVE] = archive
    app.router.add_get("/studies", search_studies)
    app.router.add_get("/series", search_series)
    app.router.add_get("/instances", search_instances)
    app.router.add_get("/studies/{study}/series", search_series)
    app.router.add_get("/studies/{study}/instances", search_instances)
    app.router.add_get("/studies/{study}/series/{series}/instances", search_instances)
    return app
