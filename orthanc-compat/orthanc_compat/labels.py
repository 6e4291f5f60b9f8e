"""Labels (Orthanc 1.12's API): ``/{level}/{id}/labels[/{label}]`` and ``/tools/labels``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from orthanc_compat.errors import INEXISTENT_ITEM, OrthancError
from orthanc_compat.keys import LEVEL_OF_PATH, add_route, archive_of, json_response, resource_id
from pacs.core.archive import Archive
from pacs.core.index.labels import check_label
from pacs.core.model import Level

LEVELS = "{level:patients|studies|series|instances}"


def _pk(archive: Archive, level: Level, public_id: str) -> int:
    return archive.resources.get(level, public_id).pk


async def list_labels(request: web.Request) -> web.Response:
    """``GET /{level}/{id}/labels``."""
    archive, level = archive_of(request), LEVEL_OF_PATH[request.match_info["level"]]
    pk = await asyncio.to_thread(_pk, archive, level, resource_id(request))
    return json_response(await asyncio.to_thread(archive.labels.labels, level, pk))


async def one_label(request: web.Request) -> web.Response:
    """``GET|PUT|DELETE /{level}/{id}/labels/{label}``."""
    archive, level = archive_of(request), LEVEL_OF_PATH[request.match_info["level"]]
    label = check_label(request.match_info["label"])
    pk = await asyncio.to_thread(_pk, archive, level, resource_id(request))
    if request.method == "PUT":
        await asyncio.to_thread(archive.labels.add, level, pk, label)
    elif request.method == "DELETE":
        await asyncio.to_thread(archive.labels.remove, level, pk, label)
    elif label not in await asyncio.to_thread(archive.labels.labels, level, pk):
        raise OrthancError(404, INEXISTENT_ITEM, f"no label {label!r} on this resource")
    return web.Response(text="", content_type="text/plain")


async def all_labels(request: web.Request) -> web.Response:
    """``GET /tools/labels``: every label in use."""
    return json_response(await asyncio.to_thread(archive_of(request).labels.all_labels))


def add_routes(app: web.Application) -> None:
    """Register the label routes."""
    add_route(app, "GET", f"/{LEVELS}/{{id}}/labels", list_labels)
    for method in ("GET", "PUT", "DELETE"):
        add_route(app, method, f"/{LEVELS}/{{id}}/labels/{{label}}", one_label)
    add_route(app, "GET", "/tools/labels", all_labels)
