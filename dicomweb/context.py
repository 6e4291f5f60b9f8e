"""What every DICOMweb handler shares: the app keys, error bodies, the service's base URL
and the instances a study/series/instance path names."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from dicomweb.metadata_cache import MetadataCache
from dicomweb.qido import check_uid
from pacs.core.archive import Archive
from pacs.core.model import Level, StoredInstance
from pacs.core.query import Query

ARCHIVE = web.AppKey("archive", Archive)
PREFIX = web.AppKey("prefix", str)
METADATA_CACHE = web.AppKey("metadata_cache", MetadataCache)


def base_url(request: web.Request) -> str:
    """Where this service is, for the URLs in our answers (RetrieveURL, BulkDataURI).

    A Host header without a port (dicomweb-client sends its host name alone) gets the port
    the request came in on, unless that is the scheme's default."""
    host = request.host
    if ":" not in host.rsplit("]", 1)[-1]:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
        if port and port != {"http": 80, "https": 443}.get(request.scheme):
            host = f"{host}:{port}"
    return f"{request.scheme}://{host}{request.app[PREFIX]}"


def error(status: int, message: str) -> web.Response:
    """A JSON error body with the reason."""
    return web.json_response({"error": message}, status=status)


def target(request: web.Request) -> Query:
    """The study, series or instance the path names, as a retrieve query."""
    match = request.match_info
    filters = {"StudyInstanceUID": check_uid(match["study"])}
    level = Level.STUDY
    if "series" in match:
        filters["SeriesInstanceUID"] = check_uid(match["series"])
        level = Level.SERIES
    if "instance" in match:
        filters["SOPInstanceUID"] = check_uid(match["instance"])
        level = Level.IMAGE
    return Query(level=level, filters=filters)


async def instances_of(request: web.Request) -> list[StoredInstance]:
    """The stored instances under the path's study, series or instance (404 when none)."""
    archive = request.app[ARCHIVE]
    instances = await asyncio.to_thread(archive.instances_matching, target(request))
    if not instances:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no such study, series or instance"}),
            content_type="application/json",
        )
    return instances
