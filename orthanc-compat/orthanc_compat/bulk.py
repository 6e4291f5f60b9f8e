"""``POST /tools/bulk-anonymize`` and ``/tools/bulk-modify``: every instance below a list of
resources (any levels) rewritten by one ``ResourceModification`` job, synchronous unless
``"Asynchronous": true``; the content lists every resource created (Orthanc's shape)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orthanc_compat.anonymize import (
    MODIFICATION_JOB,
    NAMES,
    Progress,
    instances_below,
    modification_content,
    modification_origin,
    rewrite_all,
)
from orthanc_compat.errors import BAD_REQUEST, INTERNAL, OrthancError
from orthanc_compat.jobs import Job, run_job, synchronous
from orthanc_compat.keys import add_route, archive_of, json_body, requester
from orthanc_compat.modification import (
    Modification,
    check_unsupported_options,
    parse_anonymize,
    parse_modify,
)
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME
from orthanc_compat.tools import LEVELS
from orthanc_compat.zip_archive import find_any_level
from pacs.core.archive import Archive
from pacs.core.model import InstanceSummary, Level, StoredInstance

_UID_OF = {
    Level.IMAGE: lambda s: s.sop_uid,
    Level.SERIES: lambda s: s.series_uid,
    Level.STUDY: lambda s: s.study_uid,
    Level.PATIENT: lambda s: s.patient_id,
}


def _resources(body: dict[str, Any]) -> list[str]:
    resources = body.get("Resources")
    if not isinstance(resources, list) or not resources:
        raise OrthancError(400, BAD_REQUEST, '"Resources" must be a non-empty list of ids')
    if not all(isinstance(r, str) for r in resources):
        raise OrthancError(400, BAD_REQUEST, '"Resources" must be a list of Orthanc ids')
    return list(dict.fromkeys(resources))


def _created(archive: Archive, summaries: list[InstanceSummary]) -> list[dict[str, str]]:
    """The new resources: instances, then series, studies and patients (as Orthanc)."""
    created = []
    for level in (Level.IMAGE, Level.SERIES, Level.STUDY, Level.PATIENT):
        uids = list(dict.fromkeys(str(_UID_OF[level](s)) for s in summaries))
        ids = archive.resources.public_ids_of_uids(level, uids)
        created += [
            {"ID": ids[uid], "Path": f"/{PATH_NAME[level]}/{ids[uid]}", "Type": TYPE_NAME[level]}
            for uid in uids
            if uid in ids
        ]
    return created


def run_bulk(
    archive: Archive,
    targets: list[tuple[Level, str]],
    modification: Modification,
    origin: str,
    who: str,
    progress: Progress,
) -> dict[str, Any]:
    """Rewrite every instance below the targets once; Orthanc's bulk content."""
    instances: dict[str, StoredInstance] = {}
    for level, public_id in targets:
        instances.update((i.sop_uid, i) for i in instances_below(archive, level, public_id))
    results = rewrite_all(archive, list(instances.values()), modification, origin, progress)
    summaries = [s for s in results if s is not None]
    if instances and not summaries:
        raise OrthancError(500, INTERNAL, "no instance could be rewritten")
    if not modification.keep_source:
        for level, public_id in targets:
            archive.delete(level, public_id, who=who, door=origin, reason="source of a copy")
    return {
        "Description": "REST API",
        "FailedInstancesCount": len(results) - len(summaries),
        "InstancesCount": len(summaries),
        "IsAnonymization": modification.anonymization,
        "Resources": _created(archive, summaries),
    }


def _level(body: dict[str, Any]) -> Level:
    """``Level`` of a bulk modification (default: Instance, raised to the highest identifier
    replaced, as Orthanc 1.9.7+)."""
    name = body.get("Level", "Instance")
    if not isinstance(name, str) or name.lower() not in LEVELS:
        raise OrthancError(400, BAD_REQUEST, '"Level" must be Patient, Study, Series or Instance')
    return LEVELS[name.lower()]


def _handler(anonymization: bool) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise OrthancError(400, BAD_REQUEST, "The body must contain a JSON object")
        check_unsupported_options(body)
        resources = _resources(body)
        options = {k: v for k, v in body.items() if k not in ("Resources", "Level")}
        if anonymization:
            names = request.app[NAMES]
            modification = await asyncio.to_thread(parse_anonymize, options, names.next_name)
        else:
            modification = parse_modify(options, _level(body))
        archive = archive_of(request)
        found = await asyncio.to_thread(find_any_level, archive, resources)
        targets = [(level, resource.public_id) for level, resource in found]
        origin = modification_origin(anonymization)
        who = requester(request)
        content = modification_content(anonymization)

        def work(job: Job) -> None:
            content.update(run_bulk(archive, targets, modification, origin, who, job.report))

        return await run_job(request, MODIFICATION_JOB, content, work, synchronous(body))

    return handler


def add_routes(app: web.Application) -> None:
    """Register the bulk routes."""
    add_route(app, "POST", "/tools/bulk-anonymize", _handler(True))
    add_route(app, "POST", "/tools/bulk-modify", _handler(False))
