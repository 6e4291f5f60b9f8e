"""Application keys and small request helpers shared by the route modules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from orthanc_compat.errors import BAD_REQUEST, UNKNOWN_RESOURCE, OrthancError
from pacs.core.archive import Archive
from pacs.core.model import Level
from pacs.core.runtime_settings import RuntimeSettings


@dataclass(frozen=True)
class SystemInfo:
    """What ``/system`` reports about this server (given by the composition root)."""

    name: str = "PACS"
    dicom_aet: str = "PACS"
    dicom_port: int = 11112
    http_port: int = 8042
    log_level: str = "INFO"  # the configured level, what /tools/log-level "default" restores


ARCHIVE = web.AppKey("orthanc_archive", Archive)
SYSTEM = web.AppKey("orthanc_system", SystemInfo)
RUNTIME = web.AppKey("orthanc_runtime", RuntimeSettings)

LEVEL_OF_PATH: dict[str, Level] = {
    "patients": Level.PATIENT,
    "studies": Level.STUDY,
    "series": Level.SERIES,
    "instances": Level.IMAGE,
}


def requester(request: web.Request) -> str:
    """Who asks: the authenticated user, else ``anonymous@<address>`` (for the audit)."""
    user = request.get("pacs.user")
    return str(user) if user else f"anonymous@{request.remote}"


def archive_of(request: web.Request) -> Archive:
    """The archive the sub-application serves."""
    return request.app[ARCHIVE]


def flag(request: web.Request, name: str) -> bool:
    """A boolean query argument: present (``?expand``) or ``true``/``1``."""
    if name not in request.query:
        return False
    return request.query[name].strip().lower() not in ("false", "0", "no")


def int_arg(request: web.Request, name: str, default: int = 0) -> int:
    """A non-negative integer query argument (400 when it is not one)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OrthancError(400, BAD_REQUEST, f'"{name}" must be an integer: {raw!r}') from None
    if not 0 <= value < 2**62:
        raise OrthancError(400, BAD_REQUEST, f'"{name}" must be a non-negative integer')
    return value


def resource_id(request: web.Request) -> str:
    """The ``{id}`` of the path, checked to look like an Orthanc id (else 404)."""
    value = request.match_info["id"]
    parts = value.split("-")
    if len(parts) != 5 or not all(len(p) == 8 for p in parts):
        raise OrthancError(404, UNKNOWN_RESOURCE, f"no resource {value!r}")
    try:
        int(value.replace("-", ""), 16)
    except ValueError:
        raise OrthancError(404, UNKNOWN_RESOURCE, f"no resource {value!r}") from None
    return value


async def json_body(request: web.Request) -> Any:
    """The request body parsed as JSON (400 when it is not)."""
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OrthancError(400, BAD_REQUEST, f"the body must be JSON: {exc}") from None


def json_response(body: Any, status: int = 200) -> web.Response:
    """JSON indented like Orthanc's (readable with curl); long lists compact (3x faster)."""
    indent = None if isinstance(body, list) and len(body) > 100 else 3
    return web.Response(
        text=json.dumps(body, indent=indent, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def add_route(app: web.Application, method: str, path: str, handler: Any) -> None:
    """Register a route at ``path`` and ``path/`` (Orthanc answers both; clients send both)."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, path + "/", handler)
