"""Orthanc routes answered on purpose without doing what Orthanc does: ``/peers`` (no
Orthanc peers can be configured: always empty) and ``/instances/{id}/export`` (refused)."""

from __future__ import annotations

from aiohttp import web

from orthanc_compat.errors import OrthancError
from orthanc_compat.keys import add_route, json_response, resource_id

FORBIDDEN = (-1, "Access to this resource is forbidden")  # Orthanc's HTTP 403 reply
EXPORT_REFUSED = (
    "writing files into the server's own folders over REST is refused: anyone allowed to "
    "call it could overwrite any file the server can write; download "
    "/instances/{id}/file, /archive or /media instead"
)


async def peers(request: web.Request) -> web.Response:
    """``GET /peers``: no Orthanc peers (use DICOMweb or /modalities to send elsewhere)."""
    return json_response([])


async def export(request: web.Request) -> web.Response:
    """``POST /instances/{id}/export``: refused (403)."""
    resource_id(request)
    raise OrthancError(403, FORBIDDEN, EXPORT_REFUSED)


def add_routes(app: web.Application) -> None:
    """Register the deliberately limited routes."""
    add_route(app, "GET", "/peers", peers)
    add_route(app, "POST", "/instances/{id}/export", export)
