"""``/system``, ``/statistics``, ``/changes`` and the small ``/tools``."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web
from pydicom.uid import generate_uid

from orthanc_compat.errors import BAD_REQUEST, NOT_IMPLEMENTED, OrthancError
from orthanc_compat.keys import SYSTEM, add_route, archive_of, flag, int_arg, json_response
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME, orthanc_time
from pacs.core.archive import Archive
from pacs.core.model import Level

ORTHANC_VERSION = "1.10.1"  # the Orthanc release whose REST API this one follows
API_VERSION = 16  # Orthanc 1.10.1's ApiVersion
DATABASE_VERSION = 6
MAX_CHANGES = 10_000
UID_ROOT = "1.2.826.0.1.3680043.10.1137."  # the project's UID root (as the DIMSE door's)

# Our change-feed names to Orthanc's ChangeType names.
CHANGE_TYPES = {"UpdatedInstance": "UpdatedAttachment"}
CHANGE_LEVELS = {"PATIENT": Level.PATIENT, "STUDY": Level.STUDY, "SERIES": Level.SERIES}


async def system(request: web.Request) -> web.Response:
    """``GET /system``: reports the API of Orthanc 1.10.1, with the keys of later versions
    that clients read to gate features we serve ahead of it (``HasLabels``: labels, 1.12.0;
    ``Capabilities.HasExtendedFind``: ``OrderBy``/``ResponseContent`` in ``/tools/find``,
    1.12.5; ``HasExtendedChanges``: ``/changes`` filters, not served)."""
    info = request.app[SYSTEM]
    return json_response(
        {
            "ApiVersion": API_VERSION,
            "Capabilities": {"HasExtendedChanges": False, "HasExtendedFind": True},
            "CheckRevisions": False,
            "DatabaseBackendPlugin": None,
            "DatabaseVersion": DATABASE_VERSION,
            "DicomAet": info.dicom_aet,
            "DicomPort": info.dicom_port,
            "HasLabels": True,
            "HttpPort": info.http_port,
            "IsHttpServerSecure": False,
            "Name": info.name,
            "PluginsEnabled": False,
            "StorageAreaPlugin": None,
            "Version": ORTHANC_VERSION,
        }
    )


def orthanc_statistics(counts: dict[str, int]) -> dict[str, Any]:
    """Orthanc's ``/statistics`` fields, followed by the server's own (``patients``...)."""
    size = counts["total_size"]
    return {
        "CountInstances": counts["instances"],
        "CountPatients": counts["patients"],
        "CountSeries": counts["series"],
        "CountStudies": counts["studies"],
        "TotalDiskSize": str(size),
        "TotalDiskSizeMB": size // (1024 * 1024),
        "TotalUncompressedSize": str(size),
        "TotalUncompressedSizeMB": size // (1024 * 1024),
        **counts,
    }


async def statistics(request: web.Request) -> web.Response:
    """``GET /statistics``: Orthanc's shape, with the server's own counters merged in."""
    archive = archive_of(request)
    counts = await asyncio.to_thread(archive.statistics)
    body = orthanc_statistics(counts)
    if archive.tiers is not None:  # storage tiers configured: their figures in a key of ours
        body["StorageTiers"] = (await asyncio.to_thread(archive.storage_status))["tiers"]
    return json_response(body)


def _changes(archive: Archive, since: int, limit: int, last: bool) -> dict[str, Any]:
    if last:
        latest = archive.resources.last_change_seq()
        rows = archive.changes(latest - 1, 1) if latest else []
    else:
        rows = archive.changes(since, limit + 1)
    done = len(rows) <= limit
    rows = rows[:limit]
    ids: dict[Level, dict[str, str]] = {}
    for level in Level:
        uids = [r["uid"] for r in rows if CHANGE_LEVELS.get(r["level"], Level.IMAGE) == level]
        ids[level] = archive.resources.public_ids_of_uids(level, uids) if uids else {}
    changes = []
    for row in rows:
        level = CHANGE_LEVELS.get(row["level"], Level.IMAGE)
        public_id = ids[level].get(row["uid"])
        if public_id is None:
            continue  # a resource since deleted
        changes.append(
            {
                "ChangeType": CHANGE_TYPES.get(row["type"], row["type"]),
                "Date": orthanc_time(row["time"]),
                "ID": public_id,
                "Path": f"/{PATH_NAME[level]}/{public_id}",
                "ResourceType": TYPE_NAME[level],
                "Seq": row["seq"],
            }
        )
    last_seq = rows[-1]["seq"] if rows else archive.resources.last_change_seq()
    return {"Changes": changes, "Done": done, "Last": last_seq}


async def changes(request: web.Request) -> web.Response:
    """``GET /changes?since=&limit=`` (or ``?last``) on the core's change feed."""
    since = int_arg(request, "since")
    limit = min(int_arg(request, "limit", 100) or 100, MAX_CHANGES)
    body = await asyncio.to_thread(
        _changes, archive_of(request), since, limit, flag(request, "last")
    )
    return json_response(body)


async def now(request: web.Request) -> web.Response:
    """``GET /tools/now``: UTC time as Orthanc writes it."""
    return web.Response(text=orthanc_time(time.time()), content_type="text/plain")


async def now_local(request: web.Request) -> web.Response:
    """``GET /tools/now-local``."""
    return web.Response(text=time.strftime("%Y%m%dT%H%M%S"), content_type="text/plain")


async def generate_uid_handler(request: web.Request) -> web.Response:
    """``GET /tools/generate-uid?level=patient|study|series|instance``."""
    level = request.query.get("level", "").lower()
    if level not in ("patient", "study", "series", "instance"):
        raise OrthancError(400, BAD_REQUEST, '"level" must be patient, study, series or instance')
    if level == "patient":
        return web.Response(text=str(uuid.uuid4()), content_type="text/plain")
    return web.Response(text=str(generate_uid(prefix=UID_ROOT)), content_type="text/plain")


async def execute_script(request: web.Request) -> web.Response:
    """``POST /tools/execute-script``: Lua scripting is not supported here."""
    raise OrthancError(
        501, NOT_IMPLEMENTED, "Lua scripting (/tools/execute-script) is not supported"
    )


def add_routes(app: web.Application) -> None:
    """Register the system routes."""
    add_route(app, "GET", "/system", system)
    add_route(app, "GET", "/statistics", statistics)
    add_route(app, "GET", "/changes", changes)
    add_route(app, "GET", "/tools/now", now)
    add_route(app, "GET", "/tools/now-local", now_local)
    add_route(app, "GET", "/tools/generate-uid", generate_uid_handler)
    add_route(app, "POST", "/tools/execute-script", execute_script)
