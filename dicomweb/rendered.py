"""WADO-RS rendered resources (PS3.18 10.4.1.1.3) and thumbnails: request parameters to
RenderOptions, one image (instance, frame, thumbnail) or a multipart of them (study,
series)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

from aiohttp import web

from dicomweb.context import ARCHIVE, error, instances_of
from dicomweb.http_cache import cache_headers, etag_of
from dicomweb.render import CannotRender, RenderOptions, render
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import StoredInstance

log = logging.getLogger("pacs.dicomweb")
THUMBNAIL_SIZE = 128
THUMBNAIL_TRIES = 5


def render_options(request: web.Request) -> RenderOptions:
    """WADO-RS rendered parameters: window=center,width[,function], viewport, quality."""
    accept = request.headers.get("Accept", "image/jpeg")
    media_type = (
        "image/png" if "image/png" in accept and "image/jpeg" not in accept else "image/jpeg"
    )
    center = width = None
    if "window" in request.query:
        parts = request.query["window"].split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise InvalidQuery("window must be center,width[,function]") from None
    rows = columns = None
    if "viewport" in request.query:
        try:
            columns, rows = (int(v) for v in request.query["viewport"].split(",")[:2])
        except ValueError:
            raise InvalidQuery("viewport must be width,height") from None
    quality = request.query.get("quality", "90")
    if not quality.isdigit():
        raise InvalidQuery("quality must be 1-100")
    frame = (
        int(request.match_info.get("frame", "1"))
        if request.match_info.get("frame", "1").isdigit()
        else 0
    )
    return RenderOptions(
        media_type=media_type,
        frame=frame,
        window_center=center,
        window_width=width,
        rows=rows,
        columns=columns,
        quality=int(quality),
    )


def _render_first(
    archive: Archive, candidates: list[StoredInstance], options: RenderOptions
) -> bytes:
    """The first candidate that renders (a series may start with a report or a scout)."""
    failure: Exception = NotFound("nothing to render")
    for stored in candidates:
        try:
            return render(archive, stored, options)
        except (NotFound, CannotRender) as exc:
            failure = exc
    raise failure


async def rendered(request: web.Request) -> web.Response:
    """WADO-RS rendered instance or frame (JPEG, or PNG when asked), and thumbnails of a
    study, series or instance (its middle image, small)."""
    try:
        options = render_options(request)
        instances = await instances_of(request)
        if request.path.endswith("/thumbnail"):
            if options.rows is None:
                options = replace(options, rows=THUMBNAIL_SIZE, columns=THUMBNAIL_SIZE)
            middle = len(instances) // 2
            candidates = (instances[middle:] + instances[:middle])[:THUMBNAIL_TRIES]
        else:
            candidates = instances[:1]
        data = await asyncio.to_thread(_render_first, request.app[ARCHIVE], candidates, options)
    except InvalidQuery as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    except CannotRender as exc:
        log.warning("%s", exc)
        return error(406, str(exc))
    return web.Response(
        body=data,
        headers={"Content-Type": options.media_type, **cache_headers(etag_of(instances), True)},
    )


async def rendered_many(request: web.Request) -> web.StreamResponse:
    """WADO-RS rendered study or series (PS3.18 10.4.1.1.3): ``multipart/related`` of one
    rendered image per instance (its first frame, or ``frame=N`` of ``window``...), with
    the same parameters as a rendered instance. Instances without displayable pixels (a
    report, a presentation state) are left out; 406 when nothing renders."""
    try:
        options = render_options(request)
        instances = await instances_of(request)
    except InvalidQuery as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    archive = request.app[ARCHIVE]
    boundary = uuid.uuid4().hex
    response: web.StreamResponse | None = None
    for stored in instances:
        try:
            data = await asyncio.to_thread(render, archive, stored, options)
        except (NotFound, CannotRender) as exc:
            log.info("rendered %s: %s left out: %s", request.path, stored.sop_uid, exc)
            continue
        if response is None:
            response = web.StreamResponse(
                headers={
                    "Content-Type": f'multipart/related; type="{options.media_type}"; '
                    f"boundary={boundary}",
                    **cache_headers(etag_of(instances, options.media_type), False),
                }
            )
            await response.prepare(request)
        head = f"--{boundary}\r\nContent-Type: {options.media_type}\r\n\r\n"
        await response.write(head.encode("ascii") + data + b"\r\n")
    if response is None:
        return error(406, "nothing in this study or series can be rendered")
    await response.write(f"--{boundary}--\r\n".encode("ascii"))
    await response.write_eof()
    return response
