"""The root HTTP application: request ids, error handling, authentication (``pacs.http_auth``),
health and statistics.

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
from pacs.core.errors import StorageUnavailable
from pacs.http_auth import HttpAuth
from pacs.http_cors import cors_under

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
    except StorageUnavailable as exc:  # a storage tier cannot be reached: the client may retry
        log.error("request %s %s: %s", request_id, request.path, exc)
        return web.json_response(
            {"error": "storage unavailable", "reason": str(exc), "request_id": request_id},
            status=503,
            headers={"X-Request-Id": request_id},
        )
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


async def storage(request: web.Request) -> web.Response:
    """Per storage tier: objects, bytes, free space; the archive's growth; moves under way."""
    archive = request.app[ARCHIVE_KEY]
    return web.json_response(await asyncio.to_thread(archive.storage_status))


CORS_PREFIXES = ("/dicom-web",)  # browser viewers on other origins read DICOMweb


def build_app(archive: Archive, auth: HttpAuth | None = None) -> web.Application:
    """The root application with its own routes; ``auth`` (the ``[http]`` policy, default:
    its defaults with no users) guards every route, sub-applications' included. CORS headers
    under `CORS_PREFIXES` are added outside the authentication, so that its 401s and 403s
    reach a browser on another origin readable."""
    auth = auth or HttpAuth()
    middlewares = [error_middleware, cors_under(CORS_PREFIXES), auth.middleware]
    app = web.Application(middlewares=middlewares, client_max_size=1024**3)
    app[ARCHIVE_KEY] = archive
    app.router.add_get("/health", health)
    app.router.add_get("/statistics", statistics)
    app.router.add_get("/storage", storage)
    return app
