"""``/patients``, ``/studies``, ``/series``, ``/instances``: lists, one resource, its
children and parents."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orthanc_compat.errors import BAD_REQUEST, OrthancError
from orthanc_compat.find_options import parse_requested_tags, with_requested_tags
from orthanc_compat.keys import (
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    flag,
    int_arg,
    json_response,
    requester,
    resource_id,
)
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME, ShapeBuilder
from orthanc_compat.tools import keyword_of
from pacs.core.archive import Archive
from pacs.core.index.resources import Resource
from pacs.core.model import Level


def _level(request: web.Request) -> Level:
    return LEVEL_OF_PATH[request.match_info["level"]]


def _requested(request: web.Request) -> tuple[str, ...]:
    """The ``requestedTags`` argument (``StudyDate;0010,0020``), as keywords."""
    return parse_requested_tags(request.query.get("requestedTags"), keyword_of)


def _expand(
    archive: Archive, resources: list[Resource], requested: tuple[str, ...]
) -> list[dict[str, Any]]:
    shaped = ShapeBuilder(archive).expand(resources)
    return with_requested_tags(archive, resources, shaped, requested)


def _list(
    archive: Archive,
    level: Level,
    expand: bool,
    since: int,
    limit: int,
    requested: tuple[str, ...],
) -> list[Any]:
    if not expand:
        return list(archive.resources.public_ids(level, since, limit))
    return _expand(archive, archive.resources.page(level, since, limit), requested)


async def list_resources(request: web.Request) -> web.Response:
    """``GET /{level}`` with ``expand``, ``since`` and ``limit``."""
    level = _level(request)
    since, limit = int_arg(request, "since"), int_arg(request, "limit")
    if "since" in request.query and "limit" not in request.query:
        raise OrthancError(400, BAD_REQUEST, 'Missing "limit" argument')
    expand, requested = flag(request, "expand"), _requested(request)
    body = await asyncio.to_thread(
        _list, archive_of(request), level, expand, since, limit, requested
    )
    return json_response(body)


def one_resource(archive: Archive, level: Level, public_id: str) -> Resource:
    """The resource or NotFound."""
    return archive.resources.get(level, public_id)


def _expand_one(
    archive: Archive, level: Level, public_id: str, requested: tuple[str, ...]
) -> dict[str, Any]:
    return _expand(archive, [one_resource(archive, level, public_id)], requested)[0]


async def get_resource(request: web.Request) -> web.Response:
    """``GET /{level}/{id}``."""
    body = await asyncio.to_thread(
        _expand_one, archive_of(request), _level(request), resource_id(request), _requested(request)
    )
    return json_response(body)


def _related(
    archive: Archive, level: Level, public_id: str, target: Level, requested: tuple[str, ...]
) -> Any:
    resource = one_resource(archive, level, public_id)
    if target > level:
        return _expand(
            archive, archive.resources.descendants(level, resource.pk, target), requested
        )
    return _expand(archive, [archive.resources.ancestor(level, resource.pk, target)], requested)[0]


def related_handler(target: Level) -> Any:
    """``GET /{level}/{id}/{children or parent}``: children as a list, a parent as one object."""

    async def handler(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(
            _related,
            archive_of(request),
            _level(request),
            resource_id(request),
            target,
            _requested(request),
        )
        return json_response(body)

    return handler


def _delete(archive: Archive, level: Level, public_id: str, who: str) -> dict[str, Any]:
    deletion = archive.delete(level, public_id, who=who, door="orthanc-api")
    if deletion.remaining is None:
        return {"RemainingAncestor": None}
    parent_level, parent_id = deletion.remaining
    return {
        "RemainingAncestor": {
            "ID": parent_id,
            "Path": f"/{PATH_NAME[parent_level]}/{parent_id}",
            "Type": TYPE_NAME[parent_level],
        }
    }


async def delete_resource(request: web.Request) -> web.Response:
    """``DELETE /{level}/{id}``: the resource, everything below it, and emptied parents
    (into the trash, restorable during the grace period; 409 when under legal hold)."""
    body = await asyncio.to_thread(
        _delete, archive_of(request), _level(request), resource_id(request), requester(request)
    )
    return json_response(body)


def _statistics(archive: Archive, level: Level, public_id: str) -> dict[str, Any]:
    totals = archive.resources.totals(level, one_resource(archive, level, public_id).pk)
    size, megabytes = str(totals["size"]), totals["size"] // (1024 * 1024)
    body: dict[str, Any] = {"CountInstances": totals["instances"]}
    if level <= Level.STUDY:
        body["CountSeries"] = totals["series"]
    if level == Level.PATIENT:
        body["CountStudies"] = totals["studies"]
    for prefix in ("Dicom", ""):  # stored as received: no compression, no other attachments
        for kind in ("DiskSize", "UncompressedSize"):
            body[f"{prefix}{kind}"] = size
            body[f"{prefix}{kind}MB"] = megabytes
    return dict(sorted(body.items()))


async def resource_statistics(request: web.Request) -> web.Response:
    """``GET /{patients|studies|series}/{id}/statistics``."""
    body = await asyncio.to_thread(
        _statistics, archive_of(request), _level(request), resource_id(request)
    )
    return json_response(body)


async def reconstruct_resource(request: web.Request) -> web.Response:
    """``POST /{level}/{id}/reconstruct``: the indexed attributes of the resource's instances
    read again from their stored headers, with the current default encoding (after
    ``PUT /tools/default-encoding``); an empty text answer, as Orthanc's."""
    await asyncio.to_thread(archive_of(request).reconstruct, _level(request), resource_id(request))
    return web.Response(text="", content_type="text/plain")


async def reconstruct_everything(request: web.Request) -> web.Response:
    """``POST /tools/reconstruct``: the same for every study, one at a time."""
    await asyncio.to_thread(archive_of(request).reconstruct_all)
    return web.Response(text="", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    """Register the resource routes."""
    add_route(app, "GET", "/{level:patients|studies|series}/{id}/statistics", resource_statistics)
    levels = "{level:patients|studies|series|instances}"
    add_route(app, "GET", f"/{levels}", list_resources)
    add_route(app, "GET", f"/{levels}/{{id}}", get_resource)
    add_route(app, "DELETE", f"/{levels}/{{id}}", delete_resource)
    add_route(app, "POST", f"/{levels}/{{id}}/reconstruct", reconstruct_resource)
    add_route(app, "POST", "/tools/reconstruct", reconstruct_everything)
    for parent, children in (
        ("patients", ("studies", "series", "instances")),
        ("studies", ("series", "instances")),
        ("series", ("instances",)),
    ):
        for child in children:
            add_route(
                app,
                "GET",
                f"/{{level:{parent}}}/{{id}}/{child}",
                related_handler(LEVEL_OF_PATH[child]),
            )
    for child, parents in (
        ("studies", ("patient",)),
        ("series", ("study", "patient")),
        ("instances", ("series", "study", "patient")),
    ):
        for parent in parents:
            target = {"patient": Level.PATIENT, "study": Level.STUDY, "series": Level.SERIES}
            add_route(
                app, "GET", f"/{{level:{child}}}/{{id}}/{parent}", related_handler(target[parent])
            )
