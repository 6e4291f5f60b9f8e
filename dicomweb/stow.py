"""STOW-RS (PS3.18 10.5): multipart/related uploads stored through Archive.store."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import BodyPartReader, web

from dicomweb.json_model import dicom_json_response
from pacs.core.archive import Archive
from pacs.core.errors import PacsError
from pacs.core.store_status import OUT_OF_RESOURCES, store_failure_status

log = logging.getLogger("pacs.dicomweb")

_MAX_PART_BYTES = 2 * 1024**3


def _item(sop_class: str, sop_uid: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "00081150": {"vr": "UI", "Value": [sop_class]},
        "00081155": {"vr": "UI", "Value": [sop_uid]},
        **extra,
    }


async def store_parts(
    request: web.Request, archive: Archive, base_url: str, study_uid: str | None
) -> web.Response:
    """Store every application/dicom part; answer with the PS3.18 10.5.3 response."""
    if not request.content_type.startswith("multipart/related"):
        return web.json_response(
            {"error": "expected multipart/related; type=application/dicom"}, status=415
        )
    reader = await request.multipart()
    stored: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    out_of_space = False
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        raw = await part.read(decode=True)
        if len(raw) > _MAX_PART_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=_MAX_PART_BYTES, actual_size=len(raw))
        try:
            result = await asyncio.to_thread(archive.store, bytes(raw), "STOW-RS")
        except PacsError as exc:
            code = store_failure_status(exc)
            out_of_space |= code == OUT_OF_RESOURCES
            log.warning("STOW-RS part refused (0x%04X): %s", code, exc)
            failed.append(_item("", "", {"00081197": {"vr": "US", "Value": [code]}}))
            continue
        summary = result.summary
        if study_uid is not None and summary.study_uid != study_uid:
            # Stored already: it is kept, but reported as not matching the target study.
            failed.append(
                _item(
                    summary.sop_class_uid,
                    summary.sop_uid,
                    {"00081197": {"vr": "US", "Value": [0xA900]}},
                )
            )
            continue
        url = (
            f"{base_url}/studies/{summary.study_uid}/series/{summary.series_uid}"
            f"/instances/{summary.sop_uid}"
        )
        stored.append(
            _item(
                summary.sop_class_uid, summary.sop_uid, {"00081190": {"vr": "UR", "Value": [url]}}
            )
        )
    body: dict[str, Any] = {}
    if study_uid is not None:
        body["00081190"] = {"vr": "UR", "Value": [f"{base_url}/studies/{study_uid}"]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}
    return dicom_json_response(body, _http_status(stored, failed, out_of_space))


def _http_status(stored: list[Any], failed: list[Any], out_of_space: bool) -> int:
    """200 all stored, 202 some failed, 409 none stored (507 when the disk is full)."""
    if failed and not stored:
        return 507 if out_of_space else 409
    return 202 if failed else 200
