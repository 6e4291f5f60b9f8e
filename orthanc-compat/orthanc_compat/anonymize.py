"""``POST /{patients|studies|series|instances}/{id}/anonymize`` and ``/modify``.

A patient, study or series is rewritten instance by instance and the new instances are
stored through ``Archive.store`` (origin ``orthanc:anonymize:<source instance id>`` or
``orthanc:modify:<id>``, shown as Orthanc's ``AnonymizedFrom``/``ModifiedFrom`` metadata); the
answer is Orthanc's job result for one resource. An instance is answered as the modified
DICOM file, not stored, as Orthanc does.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from pydicom import dcmread

from orthanc_compat.errors import INTERNAL, OrthancError
from orthanc_compat.jobs import Job, run_job, synchronous
from orthanc_compat.keys import (
    ARCHIVE,
    LEVEL_OF_PATH,
    add_route,
    archive_of,
    json_body,
    requester,
    resource_id,
)
from orthanc_compat.modification import (
    Modification,
    check_unsupported_options,
    parse_anonymize,
    parse_modify,
)
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME
from pacs.core.archive import Archive
from pacs.core.charsets import LATIN1, declares_charset, read_text_as
from pacs.core.errors import PacsError
from pacs.core.model import InstanceSummary, Level, StoredInstance
from pacs.core.query import Query

log = logging.getLogger("pacs.orthanc")

_ANONYMIZED = re.compile(r"^Anonymized(\d+)$")
WORKERS = 4  # instances rewritten at once by one request
MODIFICATION_JOB = "ResourceModification"


class NameSequence:
    """Orthanc's ``AnonymizedN`` patient names: N counts up, starting after the largest N
    already stored (read once from the index: the count itself is not stored)."""

    def __init__(self, archive: Archive) -> None:
        self._archive = archive
        self._last: int | None = None
        self._lock = threading.Lock()

    def _stored_maximum(self) -> int:
        query = Query(
            level=Level.PATIENT,
            filters={"PatientName": "Anonymized*"},
            return_keys=("PatientName",),
        )
        numbers = [0]
        for ds in self._archive.find(query):
            match = _ANONYMIZED.match(str(ds.get("PatientName", "")))
            if match:
                numbers.append(int(match.group(1)))
        return max(numbers)

    def next_name(self) -> str:
        """The next ``AnonymizedN``."""
        with self._lock:
            if self._last is None:
                self._last = self._stored_maximum()
            self._last += 1
            return f"Anonymized{self._last}"


NAMES = web.AppKey("orthanc_anonymized_names", NameSequence)


def instances_below(archive: Archive, level: Level, public_id: str) -> list[StoredInstance]:
    """Every instance below a resource (NotFound when there is no such resource)."""
    resource = archive.resources.get(level, public_id)
    if level == Level.PATIENT:  # instances_under starts at the study level
        studies = archive.resources.descendants(level, resource.pk, Level.STUDY)
        return archive.index.instances_under(Level.STUDY, [s.pk for s in studies])
    return archive.index.instances_under(level, [resource.pk])


def rewrite(raw: bytes, modification: Modification, charset: str = LATIN1) -> bytes:
    """One stored file, modified, as Part 10 bytes in its own transfer syntax. A file that
    declares no character set is read as ``charset`` and, unless that is Latin-1 (which
    keeps every byte as it was), declares it in the new file (as Orthanc does)."""
    ds = read_text_as(dcmread(io.BytesIO(raw), force=True), charset)
    if charset != LATIN1 and not declares_charset(ds):
        ds.SpecificCharacterSet = charset
    modification.apply(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _public_id(archive: Archive, level: Level, uid: str) -> str:
    return archive.resources.public_ids_of_uids(level, [uid])[uid]


def _uid_at(summary: InstanceSummary, level: Level) -> str:
    return str(
        {
            Level.PATIENT: summary.patient_id,
            Level.STUDY: summary.study_uid,
            Level.SERIES: summary.series_uid,
        }[level]
    )


Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    """Progress callback of work not run as a job."""


def rewrite_all(
    archive: Archive,
    instances: list[StoredInstance],
    modification: Modification,
    origin: str,
    progress: Progress = _no_progress,
) -> list[InstanceSummary | None]:
    """Rewrite and store each instance (a few at a time: their index writes share group
    commits); each one's new summary, None where it failed. ``progress(done, total)`` is
    called before each instance (a job pauses or stops there)."""
    sources = archive.resources.public_ids_of_uids(Level.IMAGE, [i.sop_uid for i in instances])
    counter = itertools.count()

    def one(stored: StoredInstance) -> InstanceSummary | None:
        progress(next(counter), len(instances))
        try:
            raw = rewrite(archive.read_instance(stored), modification, archive.text_charset())
            return archive.store(raw, f"{origin}:{sources.get(stored.sop_uid, '')}").summary
        except (PacsError, ValueError, OSError, KeyError) as exc:
            log.warning("%s of instance %s failed: %s", origin, stored.sop_uid, exc)
            return None

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="orthanc-modify") as pool:
        return list(pool.map(one, instances))


def run_on_resource(
    archive: Archive,
    level: Level,
    public_id: str,
    modification: Modification,
    origin: str,
    who: str = "system",
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Rewrite and store every instance below the resource; Orthanc's answer."""
    instances = instances_below(archive, level, public_id)
    results = rewrite_all(archive, instances, modification, origin, progress)
    done = [_uid_at(summary, level) for summary in results if summary is not None]
    failed = len(results) - len(done)
    created = done[0] if done else None
    if created is None:
        raise OrthancError(500, INTERNAL, f"no instance of {public_id} could be rewritten")
    new_id = _public_id(archive, level, created)
    new = archive.resources.get(level, new_id)
    patient = (
        new if level == Level.PATIENT else archive.resources.ancestor(level, new.pk, Level.PATIENT)
    )
    if not modification.keep_source:
        archive.delete(level, public_id, who=who, door=origin, reason="source of a copy")
    return {
        "Description": "REST API",
        "FailedInstancesCount": failed,
        "ID": new_id,
        "InstancesCount": len(instances) - failed,
        "IsAnonymization": modification.anonymization,
        "Path": f"/{PATH_NAME[level]}/{new_id}",
        "PatientID": patient.public_id,
        "Type": TYPE_NAME[level],
    }


def run_on_instance(archive: Archive, public_id: str, modification: Modification) -> bytes:
    """The modified file of one instance (not stored)."""
    resource = archive.resources.get(Level.IMAGE, public_id)
    stored = archive.instance(str(resource.values["SOPInstanceUID"]))
    return rewrite(archive.read_instance(stored), modification, archive.text_charset())


async def parse_body(
    request: web.Request, anonymization: bool, level: Level
) -> tuple[Modification, Any]:
    """The request's options as a `Modification` (and the raw body)."""
    body = await json_body(request) if await request.read() else None
    if isinstance(body, dict):
        check_unsupported_options(body)
    if anonymization:  # the first name reads the index: off the event loop
        names = request.app[NAMES]
        return await asyncio.to_thread(parse_anonymize, body, names.next_name), body
    return parse_modify(body, level), body


def modification_origin(anonymization: bool) -> str:
    """The origin recorded for instances an anonymization or modification writes."""
    return "orthanc:anonymize" if anonymization else "orthanc:modify"


def modification_content(anonymization: bool) -> dict[str, Any]:
    """A ResourceModification job's ``Content`` before it runs (Orthanc's keys)."""
    return {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 0,
        "IsAnonymization": anonymization,
    }


def _handler(anonymization: bool) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        level = LEVEL_OF_PATH[request.match_info["level"]]
        public_id = resource_id(request)
        modification, body = await parse_body(request, anonymization, level)
        archive = archive_of(request)
        if level == Level.IMAGE:
            raw = await asyncio.to_thread(run_on_instance, archive, public_id, modification)
            return web.Response(body=raw, content_type="application/dicom")
        await asyncio.to_thread(archive.resources.get, level, public_id)  # 404 before a job
        origin = modification_origin(anonymization)
        who = requester(request)
        content = modification_content(anonymization)

        def work(job: Job) -> None:
            answer = run_on_resource(
                archive, level, public_id, modification, origin, who, job.report
            )
            content.update(answer)

        return await run_job(request, MODIFICATION_JOB, content, work, synchronous(body))

    return handler


def add_routes(app: web.Application) -> None:
    """Register ``/anonymize`` and ``/modify`` at every level."""
    app[NAMES] = NameSequence(app[ARCHIVE])
    levels = "{level:patients|studies|series|instances}"
    add_route(app, "POST", f"/{levels}/{{id}}/anonymize", _handler(True))
    add_route(app, "POST", f"/{levels}/{{id}}/modify", _handler(False))
