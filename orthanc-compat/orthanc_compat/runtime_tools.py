"""Runtime settings Orthanc lets scripts change: ``/tools/default-encoding``,
``/tools/accepted-transfer-syntaxes``, ``/tools/unknown-sop-class-accepted``,
``/tools/log-level`` (on ``pacs.core.runtime_settings``, shared with the DIMSE processes)."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from orthanc_compat.errors import PARAMETER_OUT_OF_RANGE, OrthancError
from orthanc_compat.keys import RUNTIME, SYSTEM, add_route, json_response
from pacs.core.charsets import ENCODINGS
from pacs.core.runtime_settings import (
    LOG_LEVELS,
    RuntimeSettings,
    apply_log_level,
    expand_transfer_syntaxes,
)

log = logging.getLogger("pacs.orthanc")


def _runtime(request: web.Request) -> RuntimeSettings:
    runtime = request.app.get(RUNTIME)
    if runtime is None:
        raise OrthancError(503, PARAMETER_OUT_OF_RANGE, "runtime settings are not available")
    return runtime


def _text(value: str) -> web.Response:
    return web.Response(text=value, content_type="text/plain")


async def _body(request: web.Request) -> str:
    return (await request.read()).decode("utf-8", "replace").strip()


async def get_default_encoding(request: web.Request) -> web.Response:
    """``GET /tools/default-encoding``: ``Latin1``, ``Utf8``, ..."""
    return _text(_runtime(request).current().default_encoding)


async def put_default_encoding(request: web.Request) -> web.Response:
    """``PUT /tools/default-encoding`` with the encoding's name; answers it."""
    wanted = await _body(request)
    if wanted not in ENCODINGS:
        raise OrthancError(
            400,
            PARAMETER_OUT_OF_RANGE,
            f"unknown encoding {wanted!r}: one of {', '.join(ENCODINGS)}",
        )
    values = await asyncio.to_thread(_runtime(request).update, default_encoding=wanted)
    return _text(values.default_encoding)


async def get_transfer_syntaxes(request: web.Request) -> web.Response:
    """``GET /tools/accepted-transfer-syntaxes``: the UIDs the C-STORE SCP accepts."""
    return json_response(list(_runtime(request).current().transfer_syntaxes))


async def put_transfer_syntaxes(request: web.Request) -> web.Response:
    """``PUT /tools/accepted-transfer-syntaxes``: a UID or a JSON list of them, with ``*``
    and ``?`` wildcards; answers the accepted list."""
    body = await _body(request)
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        parsed = body
    patterns = [parsed] if isinstance(parsed, str) else parsed
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise OrthancError(400, PARAMETER_OUT_OF_RANGE, "expected a UID or a list of UIDs")
    try:
        syntaxes = expand_transfer_syntaxes([p.strip() for p in patterns])
    except ValueError as exc:
        raise OrthancError(400, PARAMETER_OUT_OF_RANGE, str(exc)) from None
    values = await asyncio.to_thread(_runtime(request).update, accepted_transfer_syntaxes=syntaxes)
    return json_response(list(values.transfer_syntaxes))


async def get_unknown_sop(request: web.Request) -> web.Response:
    """``GET /tools/unknown-sop-class-accepted``: ``1`` or ``0``."""
    return _text("1" if _runtime(request).current().unknown_sop_class_accepted else "0")


async def put_unknown_sop(request: web.Request) -> web.Response:
    """``PUT /tools/unknown-sop-class-accepted`` with ``1``/``0``/``true``/``false``; empty
    answer, as Orthanc."""
    body = (await _body(request)).lower()
    if body not in ("1", "0", "true", "false"):
        raise OrthancError(400, PARAMETER_OUT_OF_RANGE, "expected a boolean (1, 0, true, false)")
    await asyncio.to_thread(
        _runtime(request).update, unknown_sop_class_accepted=body in ("1", "true")
    )
    return _text("")


async def get_log_level(request: web.Request) -> web.Response:
    """``GET /tools/log-level``: ``default``, ``verbose`` or ``trace``."""
    return _text(_runtime(request).current().log_level)


async def put_log_level(request: web.Request) -> web.Response:
    """``PUT /tools/log-level``: applied at once in this process, within a second in the
    DIMSE and AI worker processes."""
    wanted = await _body(request)
    if wanted not in LOG_LEVELS:
        raise OrthancError(
            400,
            PARAMETER_OUT_OF_RANGE,
            'the log level must be one of "default", "verbose" or "trace"',
        )
    await asyncio.to_thread(_runtime(request).update, log_level=wanted)
    apply_log_level(wanted, request.app[SYSTEM].log_level)
    log.warning("the REST API has switched the log level to %s", wanted)
    return _text("")


def add_routes(app: web.Application) -> None:
    """Register the runtime-settings routes."""
    add_route(app, "GET", "/tools/default-encoding", get_default_encoding)
    add_route(app, "PUT", "/tools/default-encoding", put_default_encoding)
    add_route(app, "GET", "/tools/accepted-transfer-syntaxes", get_transfer_syntaxes)
    add_route(app, "PUT", "/tools/accepted-transfer-syntaxes", put_transfer_syntaxes)
    add_route(app, "GET", "/tools/unknown-sop-class-accepted", get_unknown_sop)
    add_route(app, "PUT", "/tools/unknown-sop-class-accepted", put_unknown_sop)
    add_route(app, "GET", "/tools/log-level", get_log_level)
    add_route(app, "PUT", "/tools/log-level", put_log_level)
