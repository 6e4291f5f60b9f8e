"""WADO-RS (PS3.18 10.4): instances as multipart/related, streamed; metadata as DICOM JSON."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from pacs.core.archive import Archive
from pacs.core.dicom_header import parse_stored_header
from pacs.core.model import StoredInstance

_CHUNK = 1024 * 1024
_BULK_THRESHOLD = 1024


async def stream_instances(
    request: web.Request,
    archive: Archive,
    instances: Sequence[StoredInstance],
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """``multipart/related; type="application/dicom"``, each part a stored file as it is,
    read in 1 MiB chunks off the event loop (a 1 GB study never sits in memory)."""
    boundary = uuid.uuid4().hex
    response = web.StreamResponse(
        headers={
            **(headers or {}),
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        }
    )
    await response.prepare(request)
    for stored in instances:
        handle = await asyncio.to_thread(archive.open_instance, stored)
        try:
            part_head = (
                f"--{boundary}\r\nContent-Type: application/dicom; "
                f"transfer-syntax={stored.transfer_syntax}\r\n"
                f"Content-Length: {stored.size}\r\n\r\n"
            )
            await response.write(part_head.encode("ascii"))
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await response.write(chunk)
            await response.write(b"\r\n")
        finally:
            handle.close()
    await response.write(f"--{boundary}--\r\n".encode("ascii"))
    await response.write_eof()
    return response


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
    result = []
    for stored in instances:
        url = _instance_url(base_url, stored)
        ds = parse_stored_header(headers[stored.sop_uid])

        def bulk(element: Any, url: str = url) -> str:
            return f"{url}/bulkdata/{int(element.tag):08X}"

        attributes: dict[str, Any] = ds.to_json_dict(_BULK_THRESHOLD, bulk)
        attributes["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{url}/frames/1"}
        result.append(attributes)
    return result
