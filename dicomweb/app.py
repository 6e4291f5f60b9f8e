"""The DICOMweb sub-application, mounted at /dicom-web by the composition root."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import replace

from aiohttp import web

from dicomweb.bulkdata import parse_tag, read_bulkdata
from dicomweb.compression import accepts_gzip, compress, encoded_headers, wants_gzip
from dicomweb.frames import CannotDecode, multipart_octets, parse_frame_numbers, read_frames
from dicomweb.http_cache import cache_headers, cors_middleware, etag_of, not_modified
from dicomweb.json_model import DICOM_JSON, answer_json, encode_dicom_json
from dicomweb.metadata_cache import MetadataCache
from dicomweb.negotiate import (
    OCTETS,
    NotAcceptable,
    acceptable_transfer_syntaxes,
    can_decode_pixels,
    choose,
)
from dicomweb.qido import build_query, check_uid
from dicomweb.render import CannotRender, RenderOptions, render
from dicomweb.stow import store_parts
from dicomweb.uri import wado_uri_handler
from dicomweb.wado import metadata_json, stream_instances
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.model import Level, StoredInstance
from pacs.core.query import Query

log = logging.getLogger("pacs.dicomweb")

ARCHIVE = web.AppKey("archive", Archive)
PREFIX = web.AppKey("prefix", str)
THUMBNAIL_SIZE = 128
THUMBNAIL_TRIES = 5
METADATA_CACHE = web.AppKey("metadata_cache", MetadataCache)
_QUERY_RETRIEVE_LEVEL = 0x00080052


def _base_url(request: web.Request) -> str:
    """Where this service is, for the URLs in our answers (RetrieveURL, BulkDataURI).

    A Host header without a port (dicomweb-client sends its host name alone) gets the port
    the request came in on, unless that is the scheme's default."""
    host = request.host
    if ":" not in host.rsplit("]", 1)[-1]:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None
        if port and port != {"http": 80, "https": 443}.get(request.scheme):
            host = f"{host}:{port}"
    return f"{request.scheme}://{host}{request.app[PREFIX]}"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _search(request: web.Request, level: Level) -> web.Response:
    archive = request.app[ARCHIVE]
    try:
        path_uids = {}
        if "study" in request.match_info:
            path_uids["StudyInstanceUID"] = check_uid(request.match_info["study"])
        if "series" in request.match_info:
            path_uids["SeriesInstanceUID"] = check_uid(request.match_info["series"])
        query = build_query(level, list(request.query.items()), path_uids)
        answers = await asyncio.to_thread(archive.find_answers, query)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    payload = [answer_json(answer, skip=frozenset({_QUERY_RETRIEVE_LEVEL})) for answer in answers]
    body = encode_dicom_json(payload)
    if wants_gzip(request, body):
        return web.Response(
            body=await compress(body),
            headers=encoded_headers({"Content-Type": DICOM_JSON}, gzipped=True),
        )
    return web.Response(body=body, headers=encoded_headers({"Content-Type": DICOM_JSON}, False))


async def search_studies(request: web.Request) -> web.Response:
    """QIDO-RS /studies."""
    return await _search(request, Level.STUDY)


async def search_series(request: web.Request) -> web.Response:
    """QIDO-RS /series and /studies/{study}/series."""
    return await _search(request, Level.SERIES)


async def search_instances(request: web.Request) -> web.Response:
    """QIDO-RS /instances, /studies/{study}/instances, /studies/{study}/series/{series}/instances."""
    return await _search(request, Level.IMAGE)


def _target(request: web.Request) -> Query:
    """The study, series or instance the path names, as a retrieve query."""
    match = request.match_info
    filters = {"StudyInstanceUID": check_uid(match["study"])}
    level = Level.STUDY
    if "series" in match:
        filters["SeriesInstanceUID"] = check_uid(match["series"])
        level = Level.SERIES
    if "instance" in match:
        filters["SOPInstanceUID"] = check_uid(match["instance"])
        level = Level.IMAGE
    return Query(level=level, filters=filters)


async def _instances(request: web.Request) -> list[StoredInstance]:
    archive = request.app[ARCHIVE]
    instances = await asyncio.to_thread(archive.instances_matching, _target(request))
    if not instances:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no such study, series or instance"}),
            content_type="application/json",
        )
    return instances


async def _fresh_instances(
    request: web.Request, variant: str = "", gzip_capable: bool = False
) -> tuple[list[StoredInstance], dict[str, str]] | web.Response:
    """The target's instances and caching headers, or the response to send instead
    (400 for a bad UID, 304 when the client's copy is current). ``variant`` names the
    representation (a negotiated transfer syntax) so that each has its own strong ETag."""
    try:
        instances = await _instances(request)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    etag = etag_of(instances, variant)
    headers = cache_headers(etag, "instance" in request.match_info)
    if not_modified(request, etag):
        if gzip_capable:  # the validator of the representation a 200 would have carried
            headers = encoded_headers(headers, accepts_gzip(request))
            headers.pop("Content-Encoding", None)
        return web.Response(status=304, headers=headers)
    return instances, headers


async def retrieve(request: web.Request) -> web.StreamResponse:
    """WADO-RS retrieve of a study, series or instance, each instance as stored or
    transcoded to the uncompressed syntax the client asks for (PS3.18 8.7.3)."""
    try:
        acceptable = acceptable_transfer_syntaxes(request.headers, request.query)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    except NotAcceptable as exc:
        return _error(406, str(exc))
    found = await _fresh_instances(request, variant=",".join(acceptable))
    if isinstance(found, web.Response):
        return found
    instances, headers = found
    headers["Vary"] = "Accept"
    try:
        return await stream_instances(request, request.app[ARCHIVE], instances, acceptable, headers)
    except NotAcceptable as exc:
        log.info("retrieve %s: %s", request.path, exc)
        return _error(406, str(exc))


async def metadata(request: web.Request) -> web.Response:
    """WADO-RS metadata of a study, series or instance."""
    found = await _fresh_instances(request, gzip_capable=True)
    if isinstance(found, web.Response):
        return found
    instances, headers = found
    headers["Content-Type"] = DICOM_JSON
    base = _base_url(request)
    cache = request.app[METADATA_CACHE]
    key = f"{headers['ETag']} {base}"
    body = cache.get(key)
    if body is None:
        payload = await asyncio.to_thread(metadata_json, request.app[ARCHIVE], instances, base)
        body = encode_dicom_json(payload)
        cache.put(key, body)
    if not wants_gzip(request, body):
        return web.Response(body=body, headers=encoded_headers(headers, gzipped=False))
    compressed = cache.get(f"{key} gzip")  # kept too, so a warm answer is not re-compressed
    if compressed is None:
        compressed = await compress(body)
        cache.put(f"{key} gzip", compressed)
    return web.Response(body=compressed, headers=encoded_headers(headers, gzipped=True))


async def frames(request: web.Request) -> web.StreamResponse:
    """WADO-RS frames of one instance."""
    try:
        numbers = parse_frame_numbers(request.match_info["frames"])
        instances = await _instances(request)
        keep_compressed = _keeps_compressed(request, instances[0])
        found = await asyncio.to_thread(
            read_frames, request.app[ARCHIVE], instances[0], numbers, keep_compressed
        )
    except InvalidQuery as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
    except (NotAcceptable, CannotDecode) as exc:
        log.warning("frames %s: %s", request.path, exc)
        return _error(406, str(exc))
    body, content_type = multipart_octets(found)
    etag = etag_of(instances, "*" if keep_compressed else "")
    return web.Response(
        body=body,
        headers={"Content-Type": content_type, "Vary": "Accept", **cache_headers(etag, True)},
    )


async def bulkdata(request: web.Request) -> web.Response:
    """WADO-RS bulk data of one top-level attribute of an instance."""
    try:
        tag = parse_tag(request.match_info["tag"])
        instances = await _instances(request)
        keep_compressed = _keeps_compressed(request, instances[0])
        found = await asyncio.to_thread(
            read_bulkdata, request.app[ARCHIVE], instances[0], tag, keep_compressed
        )
    except InvalidQuery as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
    except (NotAcceptable, CannotDecode) as exc:
        log.warning("bulkdata %s: %s", request.path, exc)
        return _error(406, str(exc))
    body, content_type = multipart_octets(found)
    etag = etag_of(instances, f"{tag:08X}{'*' if keep_compressed else ''}")
    return web.Response(
        body=body,
        headers={"Content-Type": content_type, "Vary": "Accept", **cache_headers(etag, True)},
    )


def _keeps_compressed(request: web.Request, stored: StoredInstance) -> bool:
    """Whether pixel data goes out as stored (the client accepts ``*`` or the stored
    syntax) rather than decoded to Explicit VR Little Endian; NotAcceptable when the
    client accepts neither."""
    acceptable = acceptable_transfer_syntaxes(request.headers, request.query, OCTETS)
    syntax = choose(stored.transfer_syntax, acceptable, can_decode_pixels)
    if syntax is None:
        raise NotAcceptable(
            f"pixel data stored as {stored.transfer_syntax} cannot be sent as any of "
            f"{', '.join(acceptable)}"
        )
    return syntax == stored.transfer_syntax


def _render_options(request: web.Request) -> RenderOptions:
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
        options = _render_options(request)
        instances = await _instances(request)
        if request.path.endswith("/thumbnail"):
            if options.rows is None:
                options = replace(options, rows=THUMBNAIL_SIZE, columns=THUMBNAIL_SIZE)
            middle = len(instances) // 2
            candidates = (instances[middle:] + instances[:middle])[:THUMBNAIL_TRIES]
        else:
            candidates = instances[:1]
        data = await asyncio.to_thread(_render_first, request.app[ARCHIVE], candidates, options)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
    except CannotRender as exc:
        log.warning("%s", exc)
        return _error(406, str(exc))
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
        options = _render_options(request)
        instances = await _instances(request)
    except InvalidQuery as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc))
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
        return _error(406, "nothing in this study or series can be rendered")
    await response.write(f"--{boundary}--\r\n".encode("ascii"))
    await response.write_eof()
    return response


async def stow(request: web.Request) -> web.Response:
    """STOW-RS to /studies or /studies/{study}."""
    study_uid = None
    if "study" in request.match_info:
        try:
            study_uid = check_uid(request.match_info["study"])
        except InvalidQuery as exc:
            return _error(400, str(exc))
    base = _base_url(request)
    return await store_parts(request, request.app[ARCHIVE], base, study_uid)


def build_dicomweb_app(archive: Archive, prefix: str = "/dicom-web") -> web.Application:
    """The DICOMweb routes over an Archive."""
    app = web.Application(middlewares=[cors_middleware])
    app[ARCHIVE] = archive
    app[PREFIX] = prefix
    app[METADATA_CACHE] = MetadataCache()
    app.router.add_get("/studies", search_studies)
    app.router.add_post("/studies", stow)
    app.router.add_post("/studies/{study}", stow)
    app.router.add_get("/series", search_series)
    app.router.add_get("/instances", search_instances)
    app.router.add_get("/studies/{study}/series", search_series)
    app.router.add_get("/studies/{study}/instances", search_instances)
    app.router.add_get("/studies/{study}/series/{series}/instances", search_instances)
    for path in (
        "/studies/{study}",
        "/studies/{study}/series/{series}",
        "/studies/{study}/series/{series}/instances/{instance}",
    ):
        app.router.add_get(path, retrieve)
        app.router.add_get(f"{path}/metadata", metadata)
        app.router.add_get(f"{path}/thumbnail", rendered)
    app.router.add_get("/studies/{study}/rendered", rendered_many)
    app.router.add_get("/studies/{study}/series/{series}/rendered", rendered_many)
    instance = "/studies/{study}/series/{series}/instances/{instance}"
    app.router.add_get(f"{instance}/frames/{{frames}}", frames)
    app.router.add_get(f"{instance}/bulkdata/{{tag}}", bulkdata)
    app.router.add_get(f"{instance}/rendered", rendered)
    app.router.add_get(f"{instance}/frames/{{frame}}/rendered", rendered)
    app.router.add_get("/wado", wado_uri_handler(archive))
    return app
