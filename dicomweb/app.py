"""The DICOMweb sub-application, mounted at /dicom-web by the composition root."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from dicomweb.bulkdata import parse_tag, read_bulkdata
from dicomweb.compression import accepts_gzip, compress, encoded_headers, wants_gzip
from dicomweb.context import ARCHIVE, METADATA_CACHE, PREFIX, base_url, error, instances_of
from dicomweb.frames import (
    CannotDecode,
    Frame,
    multipart_octets,
    parse_frame_numbers,
    read_frames,
)
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
from dicomweb.rendered import rendered, rendered_many
from dicomweb.stow import store_parts
from dicomweb.uri import wado_uri_handler
from dicomweb.wado import metadata_json, stream_instances
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound, StorageUnavailable
from pacs.core.model import Level, StoredInstance
from pacs.core.query import Query

log = logging.getLogger("pacs.dicomweb")

_QUERY_RETRIEVE_LEVEL = 0x00080052


def _search_body(archive: Archive, query: Query) -> bytes:
    """The encoded DICOM JSON answer to a QIDO query."""
    answers = archive.find_answers(query)
    skip = frozenset({_QUERY_RETRIEVE_LEVEL})
    return encode_dicom_json([answer_json(answer, skip=skip) for answer in answers])


async def _search(request: web.Request, level: Level) -> web.Response:
    archive = request.app[ARCHIVE]
    try:
        path_uids = {}
        if "study" in request.match_info:
            path_uids["StudyInstanceUID"] = check_uid(request.match_info["study"])
        if "series" in request.match_info:
            path_uids["SeriesInstanceUID"] = check_uid(request.match_info["series"])
        query = build_query(level, list(request.query.items()), path_uids)
        # The query, the JSON model and its encoding all run off the event loop: a broad
        # search of thousands of studies must not stall other requests.
        body = await asyncio.to_thread(_search_body, archive, query)
    except InvalidQuery as exc:
        return error(400, str(exc))
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


async def _fresh_instances(
    request: web.Request, variant: str = "", gzip_capable: bool = False
) -> tuple[list[StoredInstance], dict[str, str]] | web.Response:
    """The target's instances and caching headers, or the response to send instead
    (400 for a bad UID, 304 when the client's copy is current). ``variant`` names the
    representation (a negotiated transfer syntax) so that each has its own strong ETag."""
    try:
        instances = await instances_of(request)
    except InvalidQuery as exc:
        return error(400, str(exc))
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
        return error(400, str(exc))
    except NotAcceptable as exc:
        return error(406, str(exc))
    found = await _fresh_instances(request, variant=",".join(acceptable))
    if isinstance(found, web.Response):
        return found
    instances, headers = found
    headers["Vary"] = "Accept"
    try:
        return await stream_instances(request, request.app[ARCHIVE], instances, acceptable, headers)
    except NotAcceptable as exc:
        log.info("retrieve %s: %s", request.path, exc)
        return error(406, str(exc))


async def metadata(request: web.Request) -> web.Response:
    """WADO-RS metadata of a study, series or instance (its text depends on the default
    character set, which may change while the server runs: part of the ETag)."""
    charset = request.app[ARCHIVE].text_charset()
    found = await _fresh_instances(request, variant=charset, gzip_capable=True)
    if isinstance(found, web.Response):
        return found
    instances, headers = found
    headers["Content-Type"] = DICOM_JSON
    base = base_url(request)
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


OctetReader = Callable[[Archive, StoredInstance, bool], list[Frame]]


async def _octets(request: web.Request, read: OctetReader, variant: str) -> web.Response:
    """Parts of one instance's pixel data or bulk data as multipart octet streams, as stored
    or decoded per the client's Accept; ``variant`` tells this representation's ETag apart."""
    try:
        instances = await instances_of(request)
        keep_compressed = _keeps_compressed(request, instances[0])
        found = await asyncio.to_thread(read, request.app[ARCHIVE], instances[0], keep_compressed)
    except InvalidQuery as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    except (NotAcceptable, CannotDecode) as exc:
        log.warning("%s: %s", request.path, exc)
        return error(406, str(exc))
    body, content_type = multipart_octets(found)
    etag = etag_of(instances, f"{variant}{'*' if keep_compressed else ''}")
    return web.Response(
        body=body,
        headers={"Content-Type": content_type, "Vary": "Accept", **cache_headers(etag, True)},
    )


async def frames(request: web.Request) -> web.StreamResponse:
    """WADO-RS frames of one instance."""
    try:
        numbers = parse_frame_numbers(request.match_info["frames"])
    except InvalidQuery as exc:
        return error(400, str(exc))
    return await _octets(
        request, lambda archive, stored, keep: read_frames(archive, stored, numbers, keep), ""
    )


async def bulkdata(request: web.Request) -> web.Response:
    """WADO-RS bulk data of one top-level attribute of an instance."""
    try:
        tag = parse_tag(request.match_info["tag"])
    except InvalidQuery as exc:
        return error(400, str(exc))
    return await _octets(
        request,
        lambda archive, stored, keep: read_bulkdata(archive, stored, tag, keep),
        f"{tag:08X}",
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


async def stow(request: web.Request) -> web.Response:
    """STOW-RS to /studies or /studies/{study}."""
    study_uid = None
    if "study" in request.match_info:
        try:
            study_uid = check_uid(request.match_info["study"])
        except InvalidQuery as exc:
            return error(400, str(exc))
    base = base_url(request)
    return await store_parts(request, request.app[ARCHIVE], base, study_uid)


@web.middleware
async def storage_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A storage tier that cannot be reached: 503 with the reason (the client may retry)."""
    try:
        return await handler(request)
    except StorageUnavailable as exc:
        log.error("%s: %s", request.path, exc)
        return error(503, str(exc))


def build_dicomweb_app(archive: Archive, prefix: str = "/dicom-web") -> web.Application:
    """The DICOMweb routes over an Archive."""
    app = web.Application(middlewares=[cors_middleware, storage_errors])
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
