"""``GET /integrity``: the background scrub's progress and the problems it found."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


def integrity_handler(
    status: Callable[[], dict[str, Any]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler answering the scrub's status (read from the index off the event loop)."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(status))

    return handler
