"""One instance's content: ``/file``, ``/tags``, ``/simplified-tags``, ``/header``,
``/content/...``, ``/frames/...`` and ``/preview``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any

from aiohttp import web
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from orthanc_compat import pixels
from orthanc_compat.errors import BAD_FILE_FORMAT, INEXISTENT_TAG, UNKNOWN_RESOURCE, OrthancError
from orthanc_compat.keys import (
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    flag,
    json_response,
    resource_id,
)
from orthanc_compat.tags import full_tags, short_tags, simplified_tags
from orthanc_compat.text import element_text
from pacs.core.archive import Archive
from pacs.core.charsets import read_text_as
from pacs.core.dicom_header import parse_stored_header
from pacs.core.model import Level, StoredInstance

_TAG = re.compile(r"^([0-9a-fA-F]{4})-([0-9a-fA-F]{4})$")


def stored_instance(archive: Archive, public_id: str) -> StoredInstance:
    """Where the instance with this public id is stored (NotFound otherwise)."""
    resource = archive.resources.get(Level.IMAGE, public_id)
    return archive.instance(str(resource.values["SOPInstanceUID"]))


def read_dataset(archive: Archive, public_id: str, *, pixels: bool = True) -> Dataset:
    """The stored instance, parsed. Without ``pixels``, values over 4 KB (pixel data) are
    read from the file only if asked for: listing the tags of a 500 MB multi-frame object
    does not read its frames."""
    stored = stored_instance(archive, public_id)
    path = archive.instance_path(stored)
    try:
        if not pixels and path is not None:
            ds = dcmread(str(path), defer_size=4096, force=True)
        else:
            ds = dcmread(BytesIO(archive.read_instance(stored)), force=True)
        return read_text_as(ds, archive.text_charset())
    except (InvalidDicomError, ValueError, EOFError) as exc:
        raise OrthancError(500, BAD_FILE_FORMAT, f"the stored file does not parse: {exc}") from None


async def _dataset(request: web.Request, *, pixels: bool = False) -> Dataset:
    return await asyncio.to_thread(
        read_dataset, archive_of(request), resource_id(request), pixels=pixels
    )


async def get_file(request: web.Request) -> web.StreamResponse:
    """``GET /instances/{id}/file``: the stored Part 10 bytes, as received."""
    archive = archive_of(request)
    stored = await asyncio.to_thread(stored_instance, archive, resource_id(request))
    headers = {"Content-Type": "application/dicom"}
    path = archive.instance_path(stored)
    if path is not None:
        return web.FileResponse(path, headers=headers)
    body = await asyncio.to_thread(archive.read_instance, stored)
    return web.Response(body=body, headers=headers)


async def get_tags(request: web.Request) -> web.Response:
    """``GET /instances/{id}/tags`` (``?simplify``, ``?short``)."""
    ds = await _dataset(request)
    if flag(request, "simplify"):
        convert = simplified_tags
    elif flag(request, "short"):
        convert = short_tags
    else:
        convert = full_tags
    return json_response(await asyncio.to_thread(convert, ds))  # may read deferred values


async def get_simplified_tags(request: web.Request) -> web.Response:
    """``GET /instances/{id}/simplified-tags``."""
    ds = await _dataset(request)
    return json_response(await asyncio.to_thread(simplified_tags, ds))


async def get_header(request: web.Request) -> web.Response:
    """``GET /instances/{id}/header``: the File Meta Information."""
    ds = await _dataset(request)
    meta = Dataset(ds.file_meta) if getattr(ds, "file_meta", None) is not None else Dataset()
    if flag(request, "simplify"):
        return json_response(simplified_tags(meta))
    return json_response(full_tags(meta, meta=True))


def _tag_keys(ds: Dataset) -> list[str]:
    return [
        f"{int(e.tag) >> 16:04x}-{int(e.tag) & 0xFFFF:04x}"
        for e in ds
        if e.tag.group != 0x0002 and not e.tag.is_private_creator
    ]


def _content(ds: Dataset, parts: list[str]) -> Any:
    """Walk ``tag/index/tag/...``: a list of keys, of item indexes, or a value's bytes."""
    current: Any = ds
    for position, part in enumerate(parts):
        if isinstance(current, Dataset):
            match = _TAG.match(part)
            if match is None:
                raise OrthancError(400, INEXISTENT_TAG, f"not a tag: {part!r}")
            tag = (int(match.group(1), 16) << 16) | int(match.group(2), 16)
            if tag not in current:
                raise OrthancError(404, INEXISTENT_TAG, f"no tag {part} here")
            element = current[tag]
            if element.VR == "SQ":
                current = list(element.value)
                continue
            if position != len(parts) - 1:
                raise OrthancError(404, INEXISTENT_TAG, f"{part} is not a sequence")
            value = element.value
            raw = value if isinstance(value, bytes) else element_text(value).encode("utf-8")
            if len(raw) % 2:  # as stored: padded to an even length
                raw += b"\x00" if element.VR in ("UI", "OB", "UN") else b" "
            return raw
        if not part.isdigit() or int(part) >= len(current):
            raise OrthancError(404, UNKNOWN_RESOURCE, f"no item {part!r}")
        current = current[int(part)]
    if isinstance(current, Dataset):
        return _tag_keys(current)
    return [str(n) for n in range(len(current))]


async def get_content(request: web.Request) -> web.StreamResponse:
    """``GET /instances/{id}/content[/tag[/index/tag...]]``."""
    ds = await _dataset(request)
    path = request.match_info.get("path", "").strip("/")
    parts = [p for p in path.split("/") if p]
    result = await asyncio.to_thread(_content, ds, parts) if path else _tag_keys(ds)
    if isinstance(result, bytes):
        return web.Response(body=result, content_type="application/octet-stream")
    return json_response(result)


async def get_frames(request: web.Request) -> web.Response:
    """``GET /instances/{id}/frames``: ``[0, 1, ...]``."""
    ds = await _dataset(request)
    count = pixels.frame_count(ds) if "PixelData" in ds else 0
    return json_response(list(range(count)))


def _frame_number(request: web.Request) -> int:
    raw = request.match_info.get("frame", "0")
    if not raw.isdigit():
        raise OrthancError(400, UNKNOWN_RESOURCE, f"not a frame number: {raw!r}")
    return int(raw)


def _mime(request: web.Request) -> str:
    accept = request.headers.get("Accept", "")
    return "image/jpeg" if "image/jpeg" in accept and "image/png" not in accept else "image/png"


def _image_route(
    render: Callable[[Dataset, int, str], bytes], fixed_mime: str = ""
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        frame = _frame_number(request)
        ds = await _dataset(request, pixels=True)
        mime = fixed_mime or _mime(request)
        body = await asyncio.to_thread(render, ds, frame, mime)
        return web.Response(body=body, content_type=mime)

    return handler


def shared_tags(archive: Archive, level: Level, public_id: str, simplify: bool) -> Any:
    """The tags every instance below the resource has, with the same value."""
    resource = archive.resources.get(level, public_id)
    instances = archive.resources.descendants(level, resource.pk, Level.IMAGE)
    uids = [str(i.values["SOPInstanceUID"]) for i in instances]
    headers = archive.index.instance_headers(uids)
    shared: dict[str, Any] | None = None
    charset = archive.text_charset()
    for uid in uids:
        header = headers.get(uid) or archive.read_instance(archive.instance(uid))
        try:
            parsed = full_tags(parse_stored_header(header, charset))
        except (InvalidDicomError, ValueError, EOFError):
            continue  # an instance whose header does not parse shares nothing
        # as Orthanc: sequences and values too long to show are never "shared"
        tags = {k: v for k, v in parsed.items() if v["Type"] not in ("Sequence", "TooLong")}
        shared = tags if shared is None else {k: v for k, v in shared.items() if tags.get(k) == v}
    shared = shared or {}
    if not simplify:
        return shared
    return {entry["Name"]: entry["Value"] for entry in shared.values()}


async def get_shared_tags(request: web.Request) -> web.Response:
    """``GET /{level}/{id}/shared-tags`` (``?simplify``)."""
    level = LEVEL_OF_PATH[request.match_info["level"]]
    body = await asyncio.to_thread(
        shared_tags, archive_of(request), level, resource_id(request), flag(request, "simplify")
    )
    return json_response(body)


def add_routes(app: web.Application) -> None:
    """Register the instance content routes."""
    add_route(app, "GET", "/{level:patients|studies|series}/{id}/shared-tags", get_shared_tags)
    base = "/instances/{id}"
    add_route(app, "GET", f"{base}/file", get_file)
    add_route(app, "GET", f"{base}/tags", get_tags)
    add_route(app, "GET", f"{base}/simplified-tags", get_simplified_tags)
    add_route(app, "GET", f"{base}/header", get_header)
    add_route(app, "GET", f"{base}/content", get_content)
    add_route(app, "GET", f"{base}/content/{{path:.+}}", get_content)
    add_route(app, "GET", f"{base}/frames", get_frames)
    raw = _image_route(lambda ds, n, _: pixels.raw_frame_at(ds, n), "application/octet-stream")
    preview = _image_route(lambda ds, n, mime: pixels.eight_bit(ds, n, use_voi=False, mime=mime))
    rendered = _image_route(lambda ds, n, mime: pixels.eight_bit(ds, n, use_voi=True, mime=mime))
    uint8 = _image_route(lambda ds, n, _: pixels.uint8_png(ds, n), "image/png")
    uint16 = _image_route(lambda ds, n, _: pixels.uint16_png(ds, n), "image/png")
    int16 = _image_route(lambda ds, n, _: pixels.uint16_png(ds, n, signed=True), "image/png")
    add_route(app, "GET", f"{base}/frames/{{frame}}/raw", raw)
    add_route(app, "GET", f"{base}/frames/{{frame}}/preview", preview)
    add_route(app, "GET", f"{base}/frames/{{frame}}/rendered", rendered)
    add_route(app, "GET", f"{base}/frames/{{frame}}/image-uint8", uint8)
    add_route(app, "GET", f"{base}/image-uint8", uint8)
    add_route(app, "GET", f"{base}/frames/{{frame}}/image-uint16", uint16)
    add_route(app, "GET", f"{base}/frames/{{frame}}/image-int16", int16)
    add_route(app, "GET", f"{base}/preview", preview)
    add_route(app, "GET", f"{base}/rendered", rendered)
    add_route(app, "GET", f"{base}/image-uint16", uint16)
    add_route(app, "GET", f"{base}/image-int16", int16)
