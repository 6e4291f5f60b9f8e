"""The root HTTP application: request ids, error handling, health and statistics.

Later doors (DICOMweb, the Orthanc-compatible API, the viewer) are mounted here as
sub-applications by the composition root.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from pacs import __version__
from pacs.core.archive import Archive

log = logging.getLogger("pacs.http")

ARCHIVE_KEY = web.AppKey("archive", Archive)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id; turn unexpected errors into a logged 500 without traceback."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request_id
        raise
    except Exception:
        log.exception("request %s %s %s failed", request_id, request.method, request.path)
        return web.json_response(
            {"error": "internal error", "request_id": request_id},
            status=500,
            headers={"X-Request-Id": request_id},
        )
    response.headers["X-Request-Id"] = request_id
    return response


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers and the index can be read."""
    archive = request.app[ARCHIVE_KEY]
    stats = await asyncio.to_thread(archive.statistics)
    return web.json_response(
        {"status": "ok", "version": __version__, "instances": stats["instances"]}
    )


async def statistics(request: web.Request) -> web.Response:
    """Counts of patients, studies, series and instances, and the stored size."""
    archive = request.app[ARCHIVE_KEY]
    return web.json_response(await asyncio.to_thread(archive.statistics))


def build_app(archive: Archive) -> web.Application:
    """The root application with its own routes."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024**3)
    app[ARCHIVE_KEY] = archive
    app.router.add_get("/health", health)
    app.router.add_get("/statistics", statistics)
    return app
