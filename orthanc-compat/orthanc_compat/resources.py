"""``/patients``, ``/studies``, ``/series``, ``/instances``: lists, one resource, its
children and parents."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orthanc_compat.errors import BAD_REQUEST, OrthancError
from orthanc_compat.keys import (
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    flag,
    int_arg,
    json_response,
    resource_id,
)
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME, ShapeBuilder
from pacs.core.archive import Archive
from pacs.core.index.resources import Resource
from pacs.core.model import Level


def _level(request: web.Request) -> Level:
    return LEVEL_OF_PATH[request.match_info["level"]]


def _list(archive: Archive, level: Level, expand: bool, since: int, limit: int) -> list[Any]:
    if not expand:
        return list(archive.resources.public_ids(level, since, limit))
    resources = archive.resources.page(level, since, limit)
    return ShapeBuilder(archive).expand(resources)


async def list_resources(request: web.Request) -> web.Response:
    """``GET /{level}`` with ``expand``, ``since`` and ``limit``."""
    level = _level(request)
    since, limit = int_arg(request, "since"), int_arg(request, "limit")
    if "since" in request.query and "limit" not in request.query:
        raise OrthancError(400, BAD_REQUEST, 'Missing "limit" argument')
    body = await asyncio.to_thread(
        _list, archive_of(request), level, flag(request, "expand"), since, limit
    )
    return json_response(body)


def one_resource(archive: Archive, level: Level, public_id: str) -> Resource:
    """The resource or NotFound."""
    return archive.resources.get(level, public_id)


def _expand_one(archive: Archive, level: Level, public_id: str) -> dict[str, Any]:
    resource = one_resource(archive, level, public_id)
    return ShapeBuilder(archive).expand([resource])[0]


async def get_resource(request: web.Request) -> web.Response:
    """``GET /{level}/{id}``."""
    body = await asyncio.to_thread(
        _expand_one, archive_of(request), _level(request), resource_id(request)
    )
    return json_response(body)


def _related(archive: Archive, level: Level, public_id: str, target: Level) -> Any:
    resource = one_resource(archive, level, public_id)
    builder = ShapeBuilder(archive)
    if target > level:
        return builder.expand(archive.resources.descendants(level, resource.pk, target))
    return builder.expand([archive.resources.ancestor(level, resource.pk, target)])[0]


def related_handler(target: Level) -> Any:
    """``GET /{level}/{id}/{children or parent}``: children as a list, a parent as one object."""

    async def handler(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(
            _related, archive_of(request), _level(request), resource_id(request), target
        )
        return json_response(body)

    return handler


def _delete(archive: Archive, level: Level, public_id: str) -> dict[str, Any]:
    deletion = archive.delete(level, public_id)
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
    """``DELETE /{level}/{id}``: the resource, everything below it, and emptied parents."""
    body = await asyncio.to_thread(
        _delete, archive_of(request), _level(request), resource_id(request)
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


def add_routes(app: web.Application) -> None:
    """Register the resource routes."""
    add_route(app, "GET", "/{level:patients|studies|series}/{id}/statistics", resource_statistics)
    levels = "{level:patients|studies|series|instances}"
    add_route(app, "GET", f"/{levels}", list_resources)
    add_route(app, "GET", f"/{levels}/{{id}}", get_resource)
    add_route(app, "DELETE", f"/{levels}/{{id}}", delete_resource)
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
