"""Resource metadata as Orthanc names it (read-only): ``/{level}/{id}/metadata[/{name}]``."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orthanc_compat.errors import INEXISTENT_ITEM, OrthancError
from orthanc_compat.keys import (
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    flag,
    json_response,
    resource_id,
)
from orthanc_compat.shapes import orthanc_time
from pacs.core.archive import Archive
from pacs.core.index.resources import Resource
from pacs.core.model import Level

LEVELS = "{level:patients|studies|series|instances}"
DERIVED_ORIGIN = "orthanc:"  # instances written by /anonymize or /modify
DERIVED_FROM = {"anonymize": "AnonymizedFrom", "modify": "ModifiedFrom"}


def metadata_of(resource: Resource) -> dict[str, str]:
    """Orthanc's metadata names and values for what the index knows of a resource."""
    if resource.level != Level.IMAGE:
        return {"LastUpdate": orthanc_time(resource.updated_at)}
    origin = str(resource.extra.get("origin") or "")
    values = {
        "ReceptionDate": orthanc_time(resource.updated_at),
        "SopClassUid": str(resource.values.get("SOPClassUID") or ""),
        "TransferSyntax": str(resource.extra.get("transfer_syntax") or ""),
    }
    if origin.startswith("DIMSE:"):
        values["Origin"] = "DicomProtocol"
        values["RemoteAET"] = origin.removeprefix("DIMSE:")
    elif origin.startswith(DERIVED_ORIGIN):  # orthanc:anonymize:<source id>
        _, kind, source = [*origin.split(":", 2), "", ""][:3]
        values["Origin"] = "RestApi"
        if source:
            values[DERIVED_FROM.get(kind, "ModifiedFrom")] = source
    else:
        values["Origin"] = "RestApi" if origin == "REST" else "Unknown"
    number = resource.values.get("InstanceNumber")
    if number is not None:
        values["IndexInSeries"] = str(number)
    return dict(sorted(values.items()))


def _metadata(archive: Archive, level: Level, public_id: str) -> dict[str, str]:
    return metadata_of(archive.resources.get(level, public_id))


async def list_metadata(request: web.Request) -> web.Response:
    """``GET /{level}/{id}/metadata`` (names; ``?expand``: names and values)."""
    level = LEVEL_OF_PATH[request.match_info["level"]]
    values = await asyncio.to_thread(_metadata, archive_of(request), level, resource_id(request))
    body: Any = values if flag(request, "expand") else list(values)
    return json_response(body)


async def one_metadata(request: web.Request) -> web.Response:
    """``GET /{level}/{id}/metadata/{name}``: the value as text."""
    level = LEVEL_OF_PATH[request.match_info["level"]]
    values = await asyncio.to_thread(_metadata, archive_of(request), level, resource_id(request))
    name = request.match_info["name"]
    if name not in values:
        raise OrthancError(404, INEXISTENT_ITEM, f"no metadata {name!r}")
    return web.Response(text=values[name], content_type="text/plain")


async def exports(request: web.Request) -> web.Response:
    """``GET /exports``: nothing is exported through this API yet, so the log is empty."""
    return json_response({"Done": True, "Exports": [], "Last": 0})


def add_routes(app: web.Application) -> None:
    """Register the metadata routes."""
    add_route(app, "GET", f"/{LEVELS}/{{id}}/metadata", list_metadata)
    add_route(app, "GET", f"/{LEVELS}/{{id}}/metadata/{{name}}", one_metadata)
    add_route(app, "GET", "/exports", exports)
