"""``POST /instances``: one DICOM file, or a ZIP of them, stored through ``Archive.store``."""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from typing import Any

from aiohttp import web

from orthanc_compat.errors import BAD_FILE_FORMAT, BAD_REQUEST, OrthancError
from orthanc_compat.keys import add_route, archive_of, json_response
from orthanc_compat.shapes import PARENT_KEY, PATH_NAME
from pacs.core.archive import Archive
from pacs.core.errors import PacsError
from pacs.core.model import Level, StoreOutcome

log = logging.getLogger("pacs.orthanc")

ORIGIN = "REST"
MAX_ZIP_MEMBERS = 100_000
MAX_MEMBER_BYTES = 2 * 1024**3  # a member larger than this once inflated is skipped


def _answer(archive: Archive, sop_uid: str, outcome: StoreOutcome) -> dict[str, Any]:
    """Orthanc's answer to one stored file: its id, parents, path and status."""
    ids = archive.resources.public_ids_of_uids(Level.IMAGE, [sop_uid])
    instance = archive.resources.get(Level.IMAGE, ids[sop_uid])
    body: dict[str, Any] = {"ID": instance.public_id}
    current = instance
    while current.level > Level.PATIENT:
        body[PARENT_KEY[current.level]] = current.parent_id
        current = archive.resources.get(Level(current.level - 1), current.parent_id)
    body["ParentPatient"] = current.public_id
    body["Path"] = f"/{PATH_NAME[Level.IMAGE]}/{instance.public_id}"
    body["Status"] = "AlreadyStored" if outcome == StoreOutcome.DUPLICATE_IGNORED else "Success"
    return dict(sorted(body.items()))


def store_one(archive: Archive, raw: bytes) -> dict[str, Any]:
    """Store one file; a refusal raises (mapped to Orthanc's error JSON)."""
    result = archive.store(raw, ORIGIN)
    return _answer(archive, result.summary.sop_uid, result.outcome)


def store_zip(archive: Archive, raw: bytes) -> list[dict[str, Any]]:
    """Store every file of a ZIP; a member that is not DICOM is skipped and logged."""
    try:
        bundle = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise OrthancError(400, BAD_FILE_FORMAT, f"not a valid ZIP: {exc}") from None
    answers: list[dict[str, Any]] = []
    with bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise OrthancError(400, BAD_REQUEST, f"more than {MAX_ZIP_MEMBERS} files in the ZIP")
        for member in members:
            if member.file_size > MAX_MEMBER_BYTES:  # also guards against ZIP bombs
                log.info("ZIP member %s skipped: %d bytes", member.filename, member.file_size)
                continue
            try:
                answers.append(store_one(archive, bundle.read(member)))
            except PacsError as exc:
                log.info("ZIP member %s not stored: %s", member.filename, exc)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                log.info("ZIP member %s unreadable: %s", member.filename, exc)
    return answers


async def post_instances(request: web.Request) -> web.Response:
    """``POST /instances``."""
    raw = await request.read()
    if not raw:
        raise OrthancError(400, BAD_FILE_FORMAT, "empty body")
    archive = archive_of(request)
    if raw[:4] == b"PK\x03\x04":
        return json_response(await asyncio.to_thread(store_zip, archive, raw))
    return json_response(await asyncio.to_thread(store_one, archive, raw))


def add_routes(app: web.Application) -> None:
    """Register the upload route."""
    add_route(app, "POST", "/instances", post_instances)
