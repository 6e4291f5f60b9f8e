"""``/modalities``: remote AEs (list, add, change, delete) and C-ECHO, C-STORE, C-MOVE to them.

The modalities are the core's registry (the TOML ``[[modalities]]`` plus those added here,
stored in the index), so the DIMSE door accepts the same AEs as C-MOVE destinations and
callers. The DICOM work is done by the `Forwarder` the composition root gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydicom.dataset import Dataset

from orthanc_compat.errors import (
    BAD_FILE_FORMAT,
    INEXISTENT_ITEM,
    INTERNAL,
    PARAMETER_OUT_OF_RANGE,
    UNKNOWN_RESOURCE,
    OrthancError,
)
from orthanc_compat.jobs import JOBS, Job, JobCanceled, Work, run_job, synchronous
from orthanc_compat.keys import ARCHIVE, SYSTEM, add_route, archive_of, flag, json_response
from orthanc_compat.query_keys import dataset_of, level_name
from orthanc_compat.tags import short_tags
from pacs.core.archive import Archive
from pacs.core.errors import NotFound
from pacs.core.model import Level, StoredInstance
from pacs.core.remote import Forwarder, RemoteFailure, RemoteModality

FORWARDER = web.AppKey("orthanc_forwarder", Forwarder)

# Orthanc's JSON option -> our field, in Orthanc's (sorted) order.
_FLAGS = {
    "AllowEcho": "allow_echo",
    "AllowEventReport": "allow_event_report",
    "AllowFind": "allow_find",
    "AllowFindWorklist": "allow_find_worklist",
    "AllowGet": "allow_get",
    "AllowMove": "allow_move",
    "AllowNAction": "allow_n_action",
    "AllowStore": "allow_store",
    "AllowTranscoding": "allow_transcoding",
}
_MANUFACTURERS = (
    "Generic",
    "GenericNoWildcardInDates",
    "GenericNoUniversalWildcard",
    "Vitrea",
    "GE",
    # older names Orthanc 1.10.1 still reads (as Generic)
    "StoreScp",
    "ClearCanvas",
    "Dcm4Chee",
    "SyngoVia",
    "AgfaImpax",
    "EFilm2",
    "Siemens",
)
_OPERATIONS = ["configuration", "echo", "get", "move", "query", "store"]


def configuration(modality: RemoteModality) -> dict[str, Any]:
    """Orthanc's JSON of one modality (``?expand``, ``/configuration``)."""
    body: dict[str, Any] = {"AET": modality.ae_title}
    body.update({key: getattr(modality, name) for key, name in _FLAGS.items()})
    body.update(
        {
            "Host": modality.host,
            "LocalAet": modality.local_aet,
            "Manufacturer": modality.manufacturer,
            "Port": modality.port,
            "Timeout": modality.timeout,
            "UseDicomTls": False,
        }
    )
    return body


def _bad(details: str) -> OrthancError:
    return OrthancError(400, BAD_FILE_FORMAT, details)


def _port(value: Any) -> int:
    if isinstance(value, bool):
        raise _bad("Integer value expected in field: Port")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or not 0 < value < 65536:
        raise _bad("Integer value expected in field: Port")
    return value


def _string(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise _bad(f"String value expected in field: {key}")
    return value


def parse_modality(name: str, body: Any) -> RemoteModality:
    """A modality from Orthanc's forms: ``["AET", "host", port(, "Manufacturer")]`` or
    ``{"AET", "Host", "Port", "Manufacturer", "AllowEcho", ..., "LocalAet", "Timeout"}``."""
    if isinstance(body, list):
        if len(body) not in (3, 4) or not all(isinstance(v, str) for v in body[:2]):
            raise _bad('expected ["AET", "host", port] or ["AET", "host", port, "Manufacturer"]')
        body = dict(zip(("AET", "Host", "Port", "Manufacturer"), body, strict=False))
    if not isinstance(body, dict):
        raise _bad("a modality is a JSON object or array")
    options: dict[str, Any] = {}
    for key, field_name in _FLAGS.items():
        if key in body:
            if not isinstance(body[key], bool):
                raise _bad(f"Boolean value expected in field: {key}")
            options[field_name] = body[key]
    manufacturer = _string(body, "Manufacturer", "Generic")
    if manufacturer not in _MANUFACTURERS:
        raise OrthancError(400, PARAMETER_OUT_OF_RANGE, f"Unknown manufacturer: {manufacturer}")
    timeout = body.get("Timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise _bad("Unsigned integer value expected in field: Timeout")
    if body.get("UseDicomTls"):
        raise OrthancError(400, PARAMETER_OUT_OF_RANGE, "DICOM TLS is not supported")
    return RemoteModality(
        name=name,
        ae_title=_string(body, "AET"),
        host=_string(body, "Host"),
        port=_port(body.get("Port")),
        manufacturer=manufacturer,
        local_aet=_string(body, "LocalAet", ""),
        timeout=timeout,
        **options,
    )


async def body_json(request: web.Request) -> Any:
    """The body as JSON; Orthanc answers 400 "Bad file format" when it is not."""
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad("the body must be JSON") from None


def modality_of(request: web.Request) -> RemoteModality:
    """The modality the path names (404 when unknown)."""
    return modality_named(archive_of(request), request.match_info["name"])


def modality_named(archive: Archive, name: str) -> RemoteModality:
    """The modality registered under ``name`` (404 when unknown)."""
    try:
        return archive.modalities.get(name)
    except NotFound:
        raise OrthancError(
            404, INEXISTENT_ITEM, f"No modality with symbolic name: {name}"
        ) from None


def forwarder_of(request: web.Request) -> Forwarder:
    """The DICOM network side (500 when this server was built without one)."""
    return app_forwarder(request.app)


def app_forwarder(app: web.Application) -> Forwarder:
    """The application's DICOM network side (500 when it was built without one)."""
    forwarder = app.get(FORWARDER)
    if forwarder is None:
        raise OrthancError(500, INTERNAL, "no DICOM network service in this server")
    return forwarder


def with_options(modality: RemoteModality, body: Any) -> RemoteModality:
    """The modality with a request's ``LocalAet`` and ``Timeout`` (seconds), when given."""
    if not isinstance(body, dict):
        return modality
    changes: dict[str, Any] = {}
    if "LocalAet" in body:
        changes["local_aet"] = _string(body, "LocalAet")
    if "Timeout" in body:
        timeout = body["Timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise _bad("Unsigned integer value expected in field: Timeout")
        changes["timeout"] = timeout
    return dataclasses.replace(modality, **changes) if changes else modality


def local_aet(app: web.Application, modality: RemoteModality) -> str:
    """The AE title we call from."""
    return modality.local_aet or app[SYSTEM].dicom_aet


async def list_modalities(request: web.Request) -> web.Response:
    """``GET /modalities`` (``?expand``: each one's configuration)."""
    modalities = await asyncio.to_thread(archive_of(request).modalities.all)
    if flag(request, "expand"):
        return json_response({name: configuration(m) for name, m in modalities.items()})
    return json_response(list(modalities))


async def get_modality(request: web.Request) -> web.Response:
    """``GET /modalities/{name}``: the operations on it."""
    await asyncio.to_thread(modality_of, request)
    return json_response(_OPERATIONS)


async def get_configuration(request: web.Request) -> web.Response:
    """``GET /modalities/{name}/configuration``."""
    return json_response(configuration(await asyncio.to_thread(modality_of, request)))


async def put_modality(request: web.Request) -> web.Response:
    """``PUT /modalities/{name}``: add or change (stored in the index)."""
    modality = parse_modality(request.match_info["name"], await body_json(request))
    await asyncio.to_thread(archive_of(request).modalities.put, modality)
    return json_response({})


async def delete_modality(request: web.Request) -> web.Response:
    """``DELETE /modalities/{name}``."""
    name = request.match_info["name"]
    try:
        await asyncio.to_thread(archive_of(request).modalities.delete, name)
    except NotFound:
        raise OrthancError(
            404, INEXISTENT_ITEM, f"Unknown DICOM modality with symbolic name: {name}"
        ) from None
    return json_response({})


async def echo(request: web.Request) -> web.Response:
    """``POST /modalities/{name}/echo``: C-ECHO (``{}`` on success)."""
    modality = await asyncio.to_thread(modality_of, request)
    await asyncio.to_thread(forwarder_of(request).echo, modality)
    return json_response({})


def _is_orthanc_id(value: str) -> bool:
    parts = value.split("-")
    return len(parts) == 5 and all(
        len(p) == 8 and all(c in "0123456789abcdef" for c in p) for p in parts
    )


def _store_resources(body: Any) -> list[str]:
    resources = body.get("Resources") if isinstance(body, dict) else body
    if isinstance(resources, str):
        resources = [resources]
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise _bad('expected an id, a list of ids, or {"Resources": [...]}')
    for resource in resources:
        if not _is_orthanc_id(resource):
            raise _bad(f"This string is not a valid Orthanc identifier: {resource}")
    return resources


def instances_of(archive: Archive, public_ids: list[str]) -> list[StoredInstance]:
    """Every instance below the resources (any level), each once (404 for an unknown id)."""
    seen: dict[str, StoredInstance] = {}
    for public_id in public_ids:
        for level in Level:
            try:
                resource = archive.resources.get(level, public_id)
            except NotFound:
                continue
            if level == Level.PATIENT:  # instances_under starts at the study level
                studies = archive.resources.descendants(level, resource.pk, Level.STUDY)
                found = archive.index.instances_under(Level.STUDY, [s.pk for s in studies])
            else:
                found = archive.index.instances_under(level, [resource.pk])
            seen.update((stored.sop_uid, stored) for stored in found)
            break
        else:
            raise OrthancError(404, UNKNOWN_RESOURCE, f"unknown resource {public_id}")
    return list(seen.values())


async def store(request: web.Request) -> web.Response:
    """``POST /modalities/{name}/store``: C-STORE resources (ids of any level), as a
    ``DicomModalityStore`` job; synchronous unless ``"Asynchronous": true`` (then it runs
    again from the start if a restart interrupts it)."""
    await asyncio.to_thread(modality_of, request)  # 404 before looking at the body
    body = await body_json(request)
    recipe = {"modality": request.match_info["name"], "body": body}
    content, work = await asyncio.to_thread(_store_job, request.app, recipe)
    return await run_job(request, "DicomModalityStore", content, work, synchronous(body), recipe)


def _store_job(app: web.Application, recipe: dict[str, Any]) -> tuple[dict[str, Any], Work]:
    """The content and work of a ``DicomModalityStore`` job made by ``recipe`` (the
    modality's name and the request body): when asked, and again after a restart."""
    body = recipe["body"]
    archive = app[ARCHIVE]
    modality = with_options(modality_named(archive, str(recipe["modality"])), body)
    resources = _store_resources(body)
    instances = instances_of(archive, resources)
    forwarder = app_forwarder(app)
    content: dict[str, Any] = {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": len(instances),
        "LocalAet": local_aet(app, modality),
        "ParentResources": resources,
        "RemoteAet": modality.ae_title,
    }
    permissive = isinstance(body, dict) and bool(body.get("Permissive"))

    def work(job: Job) -> None:
        outcome = forwarder.store(modality, instances, job.report, job.cancelled)
        content["FailedInstancesCount"] = outcome.failed
        if job.cancelled():
            raise JobCanceled()
        if outcome.failed and not permissive:  # as Orthanc: the job fails unless Permissive
            raise RemoteFailure(
                f'C-STORE SCU to AET "{modality.ae_title}" has failed for '
                f"{outcome.failed} of {len(instances)} instance(s)"
            )

    return content, work


def move_identifiers(body: Any) -> list[Dataset]:
    """One C-MOVE identifier per entry of ``Resources``, at ``Level``."""
    if not isinstance(body, dict):
        raise _bad("Must provide a JSON object")
    level = level_name(body.get("Level"))
    resources = body.get("Resources")
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise _bad('"Resources" must be a list of objects of DICOM tags')
    return [dataset_of(resource, level) for resource in resources]


async def move(request: web.Request) -> web.Response:
    """``POST /modalities/{name}/move``: C-MOVE from the remote to ``TargetAet`` (default:
    us). Synchronous (``{}``) unless ``"Asynchronous": true`` (a ``DicomMoveScu`` job, run
    again from the start if a restart interrupts it)."""
    await asyncio.to_thread(modality_of, request)  # 404 before looking at the body
    body = await body_json(request)
    recipe = {"modality": request.match_info["name"], "body": body}
    content, work = await asyncio.to_thread(_move_job, request.app, recipe)
    wait = synchronous(body)
    response = await run_job(request, "DicomMoveScu", content, work, wait, recipe)
    return json_response({}) if wait else response


def _move_job(app: web.Application, recipe: dict[str, Any]) -> tuple[dict[str, Any], Work]:
    """The content and work of a ``DicomMoveScu`` job made by ``recipe``."""
    body, identifiers, modality, forwarder = _retrieve_request(app, recipe)
    target = body.get("TargetAet") or app[SYSTEM].dicom_aet
    if not isinstance(target, str):
        raise _bad("String value expected in field: TargetAet")

    def work(job: Job) -> None:
        for number, identifier in enumerate(identifiers):
            forwarder.move(modality, identifier, target)
            job.report(number + 1, len(identifiers))

    return move_content(app, modality, identifiers), work


async def get(request: web.Request) -> web.Response:
    """``POST /modalities/{name}/get``: C-GET from the remote into this archive, a
    ``DicomGetScu`` job; synchronous (answering the job's content) unless
    ``"Asynchronous": true`` (then run again from the start if a restart interrupts it);
    with ``"Permissive": true`` a failed resource does not fail the job."""
    await asyncio.to_thread(modality_of, request)  # 404 before looking at the body
    body = await body_json(request)
    recipe = {"modality": request.match_info["name"], "body": body}
    content, work = await asyncio.to_thread(_get_job, request.app, recipe)
    return await run_job(request, "DicomGetScu", content, work, synchronous(body), recipe)


def _get_job(app: web.Application, recipe: dict[str, Any]) -> tuple[dict[str, Any], Work]:
    """The content and work of a ``DicomGetScu`` job made by ``recipe``."""
    body, identifiers, modality, forwarder = _retrieve_request(app, recipe)
    permissive = bool(body.get("Permissive"))

    def work(job: Job) -> None:
        for number, identifier in enumerate(identifiers):
            job.checkpoint()
            try:
                forwarder.get(modality, identifier)
            except RemoteFailure:
                if not permissive:
                    raise
            job.report(number + 1, len(identifiers))

    return move_content(app, modality, identifiers), work


def _retrieve_request(
    app: web.Application, recipe: dict[str, Any]
) -> tuple[dict[str, Any], list[Dataset], RemoteModality, Forwarder]:
    """A C-MOVE or C-GET request's body, identifiers, modality (with the request's options)
    and the network side that runs it."""
    body = recipe["body"]
    identifiers = move_identifiers(body)
    modality = with_options(modality_named(app[ARCHIVE], str(recipe["modality"])), body)
    return body, identifiers, modality, app_forwarder(app)


def move_content(
    app: web.Application, modality: RemoteModality, identifiers: list[Dataset]
) -> dict[str, Any]:
    """The content of a ``DicomMoveScu`` (or ``DicomGetScu``) job."""
    return {
        "Description": "REST API",
        "LocalAet": local_aet(app, modality),
        "Query": [short_tags(identifier) for identifier in identifiers],
        "RemoteAet": modality.ae_title,
    }


def add_routes(app: web.Application, forwarder: Forwarder | None) -> None:
    """The ``/modalities`` routes."""
    if forwarder is not None:
        app[FORWARDER] = forwarder
    add_route(app, "GET", "/modalities", list_modalities)
    add_route(app, "GET", "/modalities/{name}", get_modality)
    add_route(app, "PUT", "/modalities/{name}", put_modality)
    add_route(app, "DELETE", "/modalities/{name}", delete_modality)
    add_route(app, "GET", "/modalities/{name}/configuration", get_configuration)
    add_route(app, "POST", "/modalities/{name}/echo", echo)
    add_route(app, "POST", "/modalities/{name}/store", store)
    add_route(app, "POST", "/modalities/{name}/move", move)
    add_route(app, "POST", "/modalities/{name}/get", get)
    for job_type, make in (
        ("DicomModalityStore", _store_job),
        ("DicomMoveScu", _move_job),
        ("DicomGetScu", _get_job),
    ):
        app[JOBS].resumable(job_type, functools.partial(_rerun, app, make=make))


def _rerun(
    app: web.Application,
    job: Job,
    *,
    make: Callable[[web.Application, dict[str, Any]], tuple[dict[str, Any], Work]],
) -> Work:
    """The work of an interrupted job made again from its recipe, with fresh content."""
    if job.recipe is None:
        raise OrthancError(500, INTERNAL, "the job kept no recipe")
    job.content, work = make(app, job.recipe)
    return work
