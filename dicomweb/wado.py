"""WADO-RS (PS3.18 10.4): instances as multipart/related, streamed; metadata as DICOM JSON."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any, BinaryIO

from aiohttp import web

from dicomweb.header_json import Memo, Unsupported, header_json
from dicomweb.negotiate import PRODUCIBLE, NotAcceptable, choose
from dicomweb.transcode import CannotTranscode, transcode
from pacs.core.archive import Archive
from pacs.core.charsets import LATIN1
from pacs.core.dicom_header import parse_stored_header
from pacs.core.model import StoredInstance

log = logging.getLogger("pacs.dicomweb")
_CHUNK = 1024 * 1024
_BULK_THRESHOLD = 1024


async def stream_instances(
    request: web.Request,
    archive: Archive,
    instances: Sequence[StoredInstance],
    acceptable: Sequence[str],
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """``multipart/related; type="application/dicom"``, one part per instance in the
    transfer syntax negotiated for it (:func:`dicomweb.negotiate.choose`).

    Files sent as stored are read in 1 MiB chunks off the event loop; transcoded ones are
    produced one at a time in a worker thread, so a 1 GB study never sits in memory.
    Instances that cannot be delivered in any acceptable syntax are left out: 206 with a
    Warning when some are, NotAcceptable (406) when all are.
    """
    plan = [(stored, choose(stored.transfer_syntax, acceptable)) for stored in instances]
    sendable = [(stored, syntax) for stored, syntax in plan if syntax is not None]
    omitted = sorted({stored.transfer_syntax for stored, syntax in plan if syntax is None})
    if not sendable:
        raise NotAcceptable(
            f"stored transfer syntax {', '.join(omitted)} cannot be converted to any of "
            f"{', '.join(acceptable)}; we can produce {', '.join(PRODUCIBLE)} or send as stored "
            "(transfer-syntax=*)"
        )
    boundary = uuid.uuid4().hex
    response: web.StreamResponse | None = None
    failed = 0
    for stored, syntax in sendable:
        data = None
        if syntax != stored.transfer_syntax:
            try:
                data = await asyncio.to_thread(_transcoded, archive, stored, syntax)
            except CannotTranscode as exc:
                failed += 1
                log.warning(
                    "retrieve: %s left out, not convertible to %s: %s", stored.sop_uid, syntax, exc
                )
                continue
        # Opened before the response is prepared: a storage tier that cannot be reached
        # still gets its 503 when it holds the first instance.
        handle = (
            None if data is not None else await asyncio.to_thread(archive.open_instance, stored)
        )
        if response is None:
            # Prepared once the first part is ready, so that a lone instance that fails
            # to convert still gets a 406.
            response = _multipart_response(
                boundary, headers, len(plan) - len(sendable) + failed, omitted, acceptable
            )
            await response.prepare(request)
        if handle is not None:
            await _write_stored(response, handle, stored, boundary)
        elif data is not None:
            await response.write(_part_head(boundary, syntax, len(data)) + data + b"\r\n")
    if response is None:
        raise NotAcceptable(f"no instance could be converted to {', '.join(acceptable)}")
    await response.write(f"--{boundary}--\r\n".encode("ascii"))
    await response.write_eof()
    return response


def _multipart_response(
    boundary: str,
    headers: dict[str, str] | None,
    left_out: int,
    omitted: Sequence[str],
    acceptable: Sequence[str],
) -> web.StreamResponse:
    """200, or 206 with a Warning saying how many instances were left out and why."""
    extra = dict(headers or {})
    if left_out:
        stored_as = f" (stored as {', '.join(omitted)})" if omitted else ""
        extra["Warning"] = (
            f'299 pacs "{left_out} instance(s) left out{stored_as}: not convertible to '
            f'{", ".join(acceptable)}"'
        )
    return web.StreamResponse(
        status=206 if left_out else 200,
        headers={
            **extra,
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
    )


def _part_head(boundary: str, syntax: str, size: int) -> bytes:
    return (
        f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode("ascii")


async def _write_stored(
    response: web.StreamResponse, handle: BinaryIO, stored: StoredInstance, boundary: str
) -> None:
    try:
        await response.write(_part_head(boundary, stored.transfer_syntax, stored.size))
        while chunk := await asyncio.to_thread(handle.read, _CHUNK):
            await response.write(chunk)
        await response.write(b"\r\n")
    finally:
        handle.close()


def _transcoded(archive: Archive, stored: StoredInstance, syntax: str) -> bytes:
    return transcode(archive.read_instance(stored), syntax, stored.transfer_syntax)


def _instance_url(base: str, stored: StoredInstance) -> str:
    return (
        f"{base}/studies/{stored.study_uid}/series/{stored.series_uid}/instances/{stored.sop_uid}"
    )


def metadata_json(
    archive: Archive, instances: Sequence[StoredInstance], base_url: str
) -> list[dict[str, Any]]:
    """Each instance's attributes in the DICOM JSON model; values over 1 KiB and Pixel Data
    are given as BulkDataURIs instead of inline."""
    headers = archive.instance_headers(instances)
    memo: Memo = {}  # values repeated across the instances are converted once
    charset = archive.text_charset()
    return [
        instance_json(
            stored, headers[stored.sop_uid], _instance_url(base_url, stored), memo, charset
        )
        for stored in instances
    ]


def instance_json(
    stored: StoredInstance,
    header: bytes,
    url: str,
    memo: Memo | None = None,
    charset: str = LATIN1,
) -> dict[str, Any]:
    """One instance's metadata: its header walked directly (pydicom where the walker
    declines), and Pixel Data as a BulkDataURI; text read as ``charset`` where the header
    declares no character set."""
    try:
        attributes = header_json(
            header,
            stored.transfer_syntax,
            lambda tag: f"{url}/bulkdata/{tag:08X}",
            memo,
            charset,
        )
    except Unsupported as exc:
        log.debug("metadata of %s through pydicom: %s", stored.sop_uid, exc)
        ds = parse_stored_header(header, charset)

        def bulk(element: Any) -> str:
            return f"{url}/bulkdata/{int(element.tag):08X}"

        attributes = ds.to_json_dict(_BULK_THRESHOLD, bulk)
    attributes["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{url}/bulkdata/7FE00010"}
    return attributes
