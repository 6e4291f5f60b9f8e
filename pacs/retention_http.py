"""The ``/storage`` door: deletions (the audit and the trash), legal holds, retention.

Routes (mutations are POST/PUT/DELETE, so the authentication middleware guards them):
    GET    /storage/deletions?state=&limit=&before=   deletions, newest first
    GET    /storage/deletions/{id}                    one deletion
    POST   /storage/deletions/{id}/restore            bring it back (same UIDs, same blobs)
    POST   /storage/deletions/{id}/purge              delete its blobs now (not when held)
    POST   /storage/deletions/purge                   purge every deletion past its grace period
    GET    /storage/holds?all=1                       active holds (all=1: with cleared ones)
    PUT    /storage/holds/{studies|patients}/{uid}    {"reason": ...}: place a hold
    DELETE /storage/holds/{studies|patients}/{uid}    {"reason": ...}: lift it
    POST   /storage/retention/run                     {"dry_run": true}: the retention pass

Errors are JSON ``{"error": ...}``: 400 bad input, 404 unknown, 409 held or wrong state,
503 a storage tier cannot be reached (a purge resumes later).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from pacs.core.archive import Archive
from pacs.core.errors import (
    Conflict,
    InvalidQuery,
    NotFound,
    OnLegalHold,
    PacsError,
    StorageUnavailable,
)
from pacs.core.retention import run_retention
from pacs.core.retention_policy import RetentionPolicy

ARCHIVE = web.AppKey("storage_archive", Archive)
POLICIES: web.AppKey[tuple[RetentionPolicy, ...]] = web.AppKey("storage_policies")
_MAX_BODY = 64 * 1024
_LEVEL = {"studies": "STUDY", "patients": "PATIENT"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def who(request: web.Request) -> str:
    """The authenticated user, else ``anonymous@<address>``."""
    user = request.get("pacs.user")
    return str(user) if user else f"anonymous@{request.remote}"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The core's refusals as JSON with the right status (never a traceback)."""
    try:
        return await handler(request)
    except (OnLegalHold, Conflict) as exc:
        return web.json_response({"error": str(exc)}, status=409)
    except NotFound as exc:
        return web.json_response({"error": str(exc)}, status=404)
    except (InvalidQuery, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except StorageUnavailable as exc:
        return web.json_response({"error": str(exc)}, status=503)
    except PacsError as exc:
        return web.json_response({"error": str(exc)}, status=500)


def _int(text: str, name: str, default: int = 0) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidQuery(f"{name} must be an integer, got {text!r}") from None
    if value < 0:
        raise InvalidQuery(f"{name} must not be negative")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object sent (empty when no body)."""
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise InvalidQuery("the body is too large")
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidQuery("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidQuery("the body must be a JSON object")
    return body


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidQuery('a reason is required: {"reason": "..."}')
    return reason


async def deletions(request: web.Request) -> web.Response:
    state = request.query.get("state", "")
    if state and state not in ("trash", "restoring", "restored", "purging", "purged"):
        raise InvalidQuery(f"unknown state {state!r}")
    limit = min(_int(request.query.get("limit", ""), "limit", 100), 10000)
    before = _int(request.query.get("before", ""), "before")
    trash = request.app[ARCHIVE].trash
    return web.json_response(await asyncio.to_thread(trash.deletions, state, limit, before))


def _deletion_id(request: web.Request) -> int:
    return _int(request.match_info["id"], "deletion id")


async def one_deletion(request: web.Request) -> web.Response:
    trash = request.app[ARCHIVE].trash
    return web.json_response(await asyncio.to_thread(trash.get, _deletion_id(request)))


async def restore(request: web.Request) -> web.Response:
    trash = request.app[ARCHIVE].trash
    result = await asyncio.to_thread(trash.restore, _deletion_id(request), who(request))
    return web.json_response(result.to_json())


async def purge_one(request: web.Request) -> web.Response:
    trash = request.app[ARCHIVE].trash
    result = await asyncio.to_thread(lambda: trash.purge(_deletion_id(request), expired_only=False))
    return web.json_response(result.to_json())


async def purge_expired(request: web.Request) -> web.Response:
    result = await asyncio.to_thread(request.app[ARCHIVE].trash.purge)
    return web.json_response(result.to_json())


async def holds(request: web.Request) -> web.Response:
    everything = request.query.get("all", "").lower() in ("1", "true", "yes")
    listed = await asyncio.to_thread(
        lambda: request.app[ARCHIVE].holds.holds(include_cleared=everything)
    )
    return web.json_response([hold.to_json() for hold in listed])


async def place_hold(request: web.Request) -> web.Response:
    reason = _reason(await _body(request))
    level, uid = _LEVEL[request.match_info["level"]], request.match_info["uid"]
    hold = await asyncio.to_thread(
        request.app[ARCHIVE].holds.place, level, uid, reason, who(request)
    )
    return web.json_response(hold.to_json())


async def lift_hold(request: web.Request) -> web.Response:
    body = await _body(request)
    reason = _reason(body if body else dict(request.query))
    level, uid = _LEVEL[request.match_info["level"]], request.match_info["uid"]
    hold = await asyncio.to_thread(
        request.app[ARCHIVE].holds.lift, level, uid, reason, who(request)
    )
    return web.json_response(hold.to_json())


async def retention_run(request: web.Request) -> web.Response:
    body = await _body(request)
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise InvalidQuery("dry_run must be true or false")
    archive, policies = request.app[ARCHIVE], request.app[POLICIES]
    requested_by = f"retention (run by {who(request)})"
    report = await asyncio.to_thread(
        lambda: run_retention(archive, policies, dry_run=dry_run, who=requested_by)
    )
    return web.json_response(report.to_json())


def build_storage_app(archive: Archive, policies: Sequence[RetentionPolicy]) -> web.Application:
    """The ``/storage`` sub-application."""
    app = web.Application(middlewares=[_errors])
    app[ARCHIVE] = archive
    app[POLICIES] = tuple(policies)
    app.router.add_get("/deletions", deletions)
    app.router.add_post("/deletions/purge", purge_expired)
    app.router.add_get(r"/deletions/{id:\d+}", one_deletion)
    app.router.add_post(r"/deletions/{id:\d+}/restore", restore)
    app.router.add_post(r"/deletions/{id:\d+}/purge", purge_one)
    app.router.add_get("/holds", holds)
    app.router.add_put("/holds/{level:studies|patients}/{uid}", place_hold)
    app.router.add_delete("/holds/{level:studies|patients}/{uid}", lift_hold)
    app.router.add_post("/retention/run", retention_run)
    return app
