"""CORS for browser viewers on other origins (Fetch standard): the headers, shared by the
doors that serve browsers, and a root-level middleware that adds them to every answer under
some path prefixes, the authentication's 401 and 403 included (a browser shows a response
without them as a network error, not as a readable 401)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXPOSED = "ETag, Content-Type, Content-Length, Content-Encoding, Warning, WWW-Authenticate"


def add_cors_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
    """Let any origin read the answer (and, on a preflight, send what it asks to send)."""
    headers["Access-Control-Allow-Origin"] = "*"
    headers["Access-Control-Expose-Headers"] = EXPOSED
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Accept, Content-Type"
        )
        headers["Access-Control-Max-Age"] = "86400"


def cors_under(prefixes: Sequence[str]) -> Middleware:
    """A middleware adding the CORS headers to every answer (errors included) for paths
    under ``prefixes``; placed before the authentication middleware on the root app."""
    roots = tuple(prefix.rstrip("/") for prefix in prefixes)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if not any(path == root or path.startswith(root + "/") for root in roots):
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            add_cors_headers(request, exc.headers)
            raise
        add_cors_headers(request, response.headers)
        return response

    return middleware
