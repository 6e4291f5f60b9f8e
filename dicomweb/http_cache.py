"""Caching headers and CORS for viewers on other origins (PS3.18 8.10; the CORS headers are
``pacs.http_cors``'s)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from pacs.core.model import StoredInstance
from pacs.http_cors import add_cors_headers

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"


def etag_of(instances: Sequence[StoredInstance], variant: str = "") -> str:
    """A strong validator: changes whenever an instance is added, replaced or removed
    (and differs between representations, ``variant``, of the same instances)."""
    digest = hashlib.sha256(variant.encode("utf-8"))
    for stored in sorted(instances, key=lambda s: s.sop_uid):
        digest.update(stored.sop_uid.encode("ascii"))
        digest.update(stored.sha256.encode("ascii"))
    return f'"{digest.hexdigest()[:32]}"'


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether the client's If-None-Match already names this resource's current data
    (weak comparison, RFC 9110 13.1.2: ``W/`` ignored; the gzip form of the tag counts)."""
    wanted = request.headers.get("If-None-Match", "")
    if not wanted:
        return False
    current = {etag, f'{etag[:-1]}-gzip"', "*"}
    return any(tag.strip().removeprefix("W/") in current for tag in wanted.split(","))


def cache_headers(etag: str, single_instance: bool) -> dict[str, str]:
    """An instance never changes; a study or series grows, so it is revalidated."""
    return {"ETag": etag, "Cache-Control": IMMUTABLE if single_instance else REVALIDATE}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let browser viewers on other origins read (and, for STOW, write) DICOMweb; the root
    application adds the same headers to what its authentication refuses."""
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            add_cors_headers(request, exc.headers)
            raise
    add_cors_headers(request, response.headers)
    return response
