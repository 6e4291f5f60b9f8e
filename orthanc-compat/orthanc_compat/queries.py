"""``POST /modalities/{name}/query`` and ``/queries``: C-FIND against a remote AE, its answers
kept in memory (the 100 most recent queries, as Orthanc's ``QueryRetrieveSize``), and C-MOVE
of one answer or all of them (``retrieve``)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydicom.dataset import Dataset

from orthanc_compat.errors import BAD_FILE_FORMAT, INEXISTENT_ITEM, OrthancError
from orthanc_compat.jobs import Job, run_job, synchronous
from orthanc_compat.keys import SYSTEM, add_route, flag, json_response
from orthanc_compat.modalities import (
    body_json,
    forwarder_of,
    modality_of,
    move_content,
    with_options,
)
from orthanc_compat.query_keys import DISPLAY, dataset_of, level_name, move_identifier
from orthanc_compat.tags import full_tags, simplified_tags
from pacs.core.remote import RemoteModality

_KEPT = 100


@dataclass
class RemoteQuery:
    """One C-FIND run: where, what, and the answers."""

    id: str
    modality: RemoteModality
    level: str
    query: Dataset
    answers: list[Dataset]


class QueryStore:
    """The most recent queries by id."""

    def __init__(self) -> None:
        self._queries: OrderedDict[str, RemoteQuery] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, query: RemoteQuery) -> None:
        with self._lock:
            self._queries[query.id] = query
            while len(self._queries) > _KEPT:
                self._queries.popitem(last=False)

    def get(self, query_id: str) -> RemoteQuery:
        with self._lock:
            query = self._queries.get(query_id)
        if query is None:
            raise OrthancError(404, INEXISTENT_ITEM, f"no query {query_id}")
        return query

    def delete(self, query_id: str) -> None:
        self.get(query_id)
        with self._lock:
            self._queries.pop(query_id, None)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._queries)


QUERIES = web.AppKey("orthanc_queries", QueryStore)


def _tags(request: web.Request, ds: Dataset) -> dict[str, Any]:
    return simplified_tags(ds) if flag(request, "simplify") else full_tags(ds)


async def query(request: web.Request) -> web.Response:
    """``POST /modalities/{name}/query``: ``{"Level", "Query", "Normalize"}`` -> C-FIND now,
    answered ``{"ID", "Path"}`` of the query."""
    modality = await asyncio.to_thread(modality_of, request)
    body = await body_json(request)
    if not isinstance(body, dict):
        raise OrthancError(400, BAD_FILE_FORMAT, "Must provide a JSON object")
    modality = with_options(modality, body)
    level = level_name(body.get("Level"))
    tags = body.get("Query", {})
    if not isinstance(tags, dict):
        raise OrthancError(400, BAD_FILE_FORMAT, '"Query" must be a JSON object')
    asked = dataset_of(tags, level)
    identifier = dataset_of(tags, level, normalize=bool(body.get("Normalize", True)))
    answers = await asyncio.to_thread(forwarder_of(request).find, modality, identifier)
    del asked.QueryRetrieveLevel
    found = RemoteQuery(str(uuid.uuid4()), modality, level, asked, answers)
    request.app[QUERIES].add(found)
    return json_response({"ID": found.id, "Path": f"/queries/{found.id}"})


def _query_of(request: web.Request) -> RemoteQuery:
    return request.app[QUERIES].get(request.match_info["id"])


def _answer_of(request: web.Request) -> tuple[RemoteQuery, int]:
    found = _query_of(request)
    raw = request.match_info["index"]
    if not raw.isdigit() or int(raw) >= len(found.answers):
        raise OrthancError(404, INEXISTENT_ITEM, f"no answer {raw}")
    return found, int(raw)


async def list_queries(request: web.Request) -> web.Response:
    """``GET /queries``."""
    return json_response(request.app[QUERIES].ids())


async def get_query(request: web.Request) -> web.Response:
    """``GET /queries/{id}``: what can be read or done."""
    _query_of(request)
    return json_response(["answers", "level", "modality", "query", "retrieve"])


async def delete_query(request: web.Request) -> web.Response:
    """``DELETE /queries/{id}``."""
    request.app[QUERIES].delete(request.match_info["id"])
    return json_response({})


async def answers(request: web.Request) -> web.Response:
    """``GET /queries/{id}/answers`` (``?expand``, ``?simplify``)."""
    found = _query_of(request)
    if flag(request, "expand"):
        return json_response([_tags(request, answer) for answer in found.answers])
    return json_response([str(n) for n in range(len(found.answers))])


async def answer(request: web.Request) -> web.Response:
    """``GET /queries/{id}/answers/{index}``."""
    _answer_of(request)
    return json_response(["content", "retrieve"])


async def answer_content(request: web.Request) -> web.Response:
    """``GET /queries/{id}/answers/{index}/content`` (``?simplify``)."""
    found, index = _answer_of(request)
    return json_response(_tags(request, found.answers[index]))


async def level(request: web.Request) -> web.Response:
    """``GET /queries/{id}/level``: ``Study``..."""
    return web.Response(text=DISPLAY[_query_of(request).level])


async def modality(request: web.Request) -> web.Response:
    """``GET /queries/{id}/modality``: the modality's symbolic name."""
    return web.Response(text=_query_of(request).modality.name)


async def query_tags(request: web.Request) -> web.Response:
    """``GET /queries/{id}/query`` (``?simplify``): the tags asked for."""
    return json_response(_tags(request, _query_of(request).query))


async def _retrieve_body(request: web.Request) -> tuple[str, Any]:
    """The target AE of a retrieve: the body as text (an AE title) or
    ``{"TargetAet", "Synchronous"/"Asynchronous"}``; default: us."""
    raw = (await request.read()).decode("utf-8", "replace").strip()
    body: Any = None
    if raw.startswith("{"):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise OrthancError(400, BAD_FILE_FORMAT, "the body must be JSON") from None
        target = body.get("TargetAet", "")
    else:
        target = raw
    if not isinstance(target, str):
        raise OrthancError(400, BAD_FILE_FORMAT, "String value expected in field: TargetAet")
    return target.strip() or request.app[SYSTEM].dicom_aet, body


async def _retrieve(
    request: web.Request, found: RemoteQuery, chosen: list[Dataset]
) -> web.Response:
    target, body = await _retrieve_body(request)
    forwarder = forwarder_of(request)
    identifiers = [move_identifier(answer, found.level) for answer in chosen]
    content = move_content(request.app, found.modality, identifiers)

    def work(job: Job) -> None:
        for number, identifier in enumerate(identifiers):
            forwarder.move(found.modality, identifier, target)
            job.report(number + 1, len(identifiers))

    return await run_job(request, "DicomMoveScu", content, work, synchronous(body))


async def retrieve_answer(request: web.Request) -> web.Response:
    """``POST /queries/{id}/answers/{index}/retrieve``: C-MOVE one answer."""
    found, index = _answer_of(request)
    return await _retrieve(request, found, [found.answers[index]])


async def retrieve_all(request: web.Request) -> web.Response:
    """``POST /queries/{id}/retrieve``: C-MOVE every answer."""
    found = _query_of(request)
    return await _retrieve(request, found, found.answers)


def add_routes(app: web.Application) -> None:
    """The query routes and their store."""
    app[QUERIES] = QueryStore()
    add_route(app, "POST", "/modalities/{name}/query", query)
    add_route(app, "GET", "/queries", list_queries)
    add_route(app, "GET", "/queries/{id}", get_query)
    add_route(app, "DELETE", "/queries/{id}", delete_query)
    add_route(app, "GET", "/queries/{id}/answers", answers)
    add_route(app, "GET", "/queries/{id}/answers/{index}", answer)
    add_route(app, "GET", "/queries/{id}/answers/{index}/content", answer_content)
    add_route(app, "POST", "/queries/{id}/answers/{index}/retrieve", retrieve_answer)
    add_route(app, "POST", "/queries/{id}/retrieve", retrieve_all)
    add_route(app, "GET", "/queries/{id}/level", level)
    add_route(app, "GET", "/queries/{id}/modality", modality)
    add_route(app, "GET", "/queries/{id}/query", query_tags)
