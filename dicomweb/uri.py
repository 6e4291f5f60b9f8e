"""WADO-URI (PS3.18 9): ``/wado?requestType=WADO&studyUID=...&seriesUID=...&objectUID=...``
for legacy viewers and HIS links; rendered JPEG/PNG or the DICOM file itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from dicomweb.qido import check_uid
from dicomweb.render import CannotRender, RenderOptions, render
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import Level
from pacs.core.query import Query

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _number(params: Mapping[str, str], name: str, kind: type = float) -> float | int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        return kind(text)  # type: ignore[no-any-return]
    except ValueError:
        raise InvalidQuery(f"{name} must be a number, got {text!r}") from None


def options_from_uri(params: Mapping[str, str], media_type: str) -> RenderOptions:
    """WADO-URI rendering parameters."""
    frame = _number(params, "frameNumber", int)
    quality = _number(params, "imageQuality", int)
    rows, columns = _number(params, "rows", int), _number(params, "columns", int)
    return RenderOptions(
        media_type=media_type,
        frame=int(frame or 1),
        window_center=_number(params, "windowCenter"),
        window_width=_number(params, "windowWidth"),
        rows=int(rows) if rows else None,
        columns=int(columns) if columns else None,
        quality=int(quality or 90),
    )


def wado_uri_handler(archive: Archive) -> Handler:
    """The WADO-URI endpoint over an Archive (mounted at /wado and /dicom-web/wado)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        params = request.query
        try:
            if params.get("requestType") != "WADO":
                raise InvalidQuery("requestType must be WADO")
            query = Query(
                level=Level.IMAGE,
                filters={
                    "StudyInstanceUID": check_uid(params.get("studyUID", "")),
                    "SeriesInstanceUID": check_uid(params.get("seriesUID", "")),
                    "SOPInstanceUID": check_uid(params.get("objectUID", "")),
                },
            )
            instances = await asyncio.to_thread(archive.instances_matching, query)
            if not instances:
                raise NotFound("no such instance")
            media_type = params.get("contentType", "image/jpeg").split(",")[0].strip()
            if media_type == "application/dicom":
                data = await asyncio.to_thread(archive.read_instance, instances[0])
            else:
                options = options_from_uri(params, media_type)
                data = await asyncio.to_thread(render, archive, instances[0], options)
        except InvalidQuery as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except CannotRender as exc:
            return web.json_response({"error": str(exc)}, status=406)
        return web.Response(
            body=data,
            headers={"Content-Type": media_type, "Cache-Control": "private, max-age=31536000"},
        )

    return handle
