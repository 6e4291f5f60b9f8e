"""gzip of DICOM JSON where it pays (QIDO-RS and metadata answers over 1 KiB, when the
client sends ``Accept-Encoding: gzip``); never of multipart image payloads, which are
already compressed or are pixels that gzip barely shrinks.

A gzip body is a different representation from the identity one, so it gets its own
strong ETag (``"<tag>-gzip"``, as Apache does); a conditional request naming either
form is answered 304, since both stand for the same data. Every response that could
have been compressed says ``Vary: Accept-Encoding`` so shared caches keep them apart.
"""

from __future__ import annotations

import asyncio
import gzip

from aiohttp import web

MIN_SIZE = 1024
LEVEL = 6
_IN_THREAD = 256 * 1024


def accepts_gzip(request: web.Request) -> bool:
    """Whether Accept-Encoding allows gzip (``gzip``, ``x-gzip`` or ``*`` with q > 0)."""
    for item in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        quality = params.strip().removeprefix("q=").strip()
        try:
            if not quality or float(quality) > 0:
                return True
        except ValueError:
            return True
    return False


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation of the body whose ETag is ``etag``."""
    return f'{etag[:-1]}-gzip"' if etag.endswith('"') else etag


def wants_gzip(request: web.Request, body: bytes) -> bool:
    """Whether to send this JSON body gzip-compressed."""
    return len(body) > MIN_SIZE and accepts_gzip(request)


async def compress(body: bytes) -> bytes:
    """gzip of the body; off the event loop when large."""
    if len(body) > _IN_THREAD:
        return await asyncio.to_thread(gzip.compress, body, LEVEL, mtime=0)
    return gzip.compress(body, LEVEL, mtime=0)


def encoded_headers(headers: dict[str, str], gzipped: bool) -> dict[str, str]:
    """The response headers for the identity or gzip representation."""
    result = {**headers, "Vary": "Accept-Encoding"}
    if gzipped:
        result["Content-Encoding"] = "gzip"
        if "ETag" in result:
            result["ETag"] = gzip_etag(result["ETag"])
    return result
