"""The AI door over HTTP (mounted at ``/ai``): models and their measured performance, results
per study, the worklist ordered by urgency, readers' feedback, and the queue's state.

Routes:
    GET  /ai/models                         installed models, cards and standing (research or clinical)
    GET  /ai/worklist?limit&offset&flagged  studies, most urgent first
    GET  /ai/studies/{study_uid}            every result in one study
    GET  /ai/results/{id}                   one result, with its feedback
    POST /ai/results/{id}/feedback          {"verdict": "confirmed"|"rejected", "reader": ..., "comment": ...}
    GET  /ai/jobs?state=                    queue counts and recent jobs
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound

ARCHIVE = web.AppKey("ai_archive", Archive)
ModelLister = Callable[[], Sequence[dict[str, Any]]]
MODELS: web.AppKey[ModelLister] = web.AppKey("ai_models")
_MAX_BODY = 64 * 1024


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not 0 <= value <= maximum:
        raise web.HTTPBadRequest(text=f"{name} must lie between 0 and {maximum}")
    return value


def _result_id(request: web.Request) -> int:
    try:
        return int(request.match_info["result_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such AI result") from None


async def models(request: web.Request) -> web.Response:
    """Installed models with their cards: version, threshold, intended use, performance."""
    listed = await asyncio.to_thread(request.app[MODELS])
    return web.json_response(list(listed))


async def worklist(request: web.Request) -> web.Response:
    """Studies ordered most urgent first (flagged by score, then scored, then unread)."""
    limit = _int_param(request, "limit", 100, 1000)
    offset = _int_param(request, "offset", 0, 10**9)
    flagged = request.query.get("flagged", "").lower() in ("1", "true", "yes")
    entries = await asyncio.to_thread(
        request.app[ARCHIVE].ai_results.worklist, limit, offset, flagged
    )
    return web.json_response(entries)


async def study_results(request: web.Request) -> web.Response:
    """Every AI result in one study."""
    results = await asyncio.to_thread(
        request.app[ARCHIVE].ai_results.for_study, request.match_info["study_uid"]
    )
    return web.json_response(results)


async def one_result(request: web.Request) -> web.Response:
    """One result and the verdicts readers gave on it."""
    results = request.app[ARCHIVE].ai_results
    result_id = _result_id(request)
    try:
        result = await asyncio.to_thread(results.get, result_id)
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    result["feedback_history"] = await asyncio.to_thread(results.feedback, result_id)
    return web.json_response(result)


async def add_feedback(request: web.Request) -> web.Response:
    """A reader confirms or rejects a flag; kept for evaluation."""
    result_id = _result_id(request)
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY, actual_size=request.content_length)
    try:
        body = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body must be a JSON object") from None
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key, ""), str) for key in ("verdict", "reader", "comment")
    ):
        raise web.HTTPBadRequest(text='expected {"verdict": ..., "reader": ..., "comment": ...}')
    try:
        feedback_id = await asyncio.to_thread(
            request.app[ARCHIVE].ai_results.add_feedback,
            result_id,
            body.get("verdict", ""),
            body.get("reader", ""),
            body.get("comment", ""),
        )
    except NotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except InvalidQuery as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"id": feedback_id, "result": result_id}, status=201)


async def jobs(request: web.Request) -> web.Response:
    """How many series wait, run, are done, skipped or failed; the latest jobs."""
    queue = request.app[ARCHIVE].ai_queue
    state = request.query.get("state", "")
    if state and state not in ("pending", "running", "done", "skipped", "failed"):
        raise web.HTTPBadRequest(text=f"unknown state {state!r}")
    counts = await asyncio.to_thread(queue.counts)
    recent = await asyncio.to_thread(queue.jobs, state, _int_param(request, "limit", 50, 1000))
    return web.json_response({"counts": counts, "jobs": recent})


def build_ai_app(
    archive: Archive, list_models: Callable[[], Sequence[dict[str, Any]]]
) -> web.Application:
    """The ``/ai`` sub-application."""
    app = web.Application()
    app[ARCHIVE] = archive
    app[MODELS] = list_models
    app.router.add_get("/models", models)
    app.router.add_get("/worklist", worklist)
    app.router.add_get("/studies/{study_uid}", study_results)
    app.router.add_get("/results/{result_id}", one_result)
    app.router.add_post("/results/{result_id}/feedback", add_feedback)
    app.router.add_get("/jobs", jobs)
    return app
