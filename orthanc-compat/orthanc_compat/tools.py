"""``/tools/find`` (on the core's Query model) and ``/tools/lookup``."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from orthanc_compat.errors import (
    BAD_REQUEST,
    PARAMETER_OUT_OF_RANGE,
    UNKNOWN_DICOM_TAG,
    OrthancError,
)
from orthanc_compat.find_options import (
    OrderKey,
    order_records,
    parse_order_by,
    parse_parents,
    parse_response_content,
    shape_content,
    tag_values,
    under_parents,
)
from orthanc_compat.keys import add_route, archive_of, json_body, json_response
from orthanc_compat.metadata import metadata_of
from orthanc_compat.shapes import PATH_NAME, TYPE_NAME, ShapeBuilder
from pacs.core.archive import Archive
from pacs.core.index.labels import Constraint, check_label
from pacs.core.index.sql_index import Record
from pacs.core.model import INDEXED, Level, MatchKind
from pacs.core.query import Query, kind_for_vr
from pacs.core.responses import filter_records

LEVELS = {
    "patient": Level.PATIENT,
    "study": Level.STUDY,
    "series": Level.SERIES,
    "instance": Level.IMAGE,
}
_HEX_TAG = re.compile(r"^\(?([0-9a-fA-F]{4})[,-]([0-9a-fA-F]{4})\)?$")


@dataclass(frozen=True)
class FindRequest:
    """A parsed ``/tools/find`` body."""

    query: Query
    expand: bool
    case_sensitive: bool
    requested_tags: tuple[str, ...]
    labels: tuple[str, ...] = ()
    labels_constraint: Constraint = "All"
    order_by: tuple[OrderKey, ...] = ()
    response_content: tuple[str, ...] | None = None
    parents: tuple[tuple[Level, str], ...] = ()


def keyword_of(name: str) -> str:
    """``PatientName``, ``0010,0010`` or ``0010-0010`` -> ``PatientName`` (400 if unknown)."""
    match = _HEX_TAG.match(name.strip())
    if match:
        keyword = keyword_for_tag((int(match.group(1), 16) << 16) | int(match.group(2), 16))
        if keyword:
            return str(keyword)
    elif tag_for_keyword(name.strip()) is not None:
        return name.strip()
    raise OrthancError(400, UNKNOWN_DICOM_TAG, f"unknown DICOM tag {name!r}")


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise OrthancError(400, BAD_REQUEST, f'"{name}" must be a non-negative integer')
    return value


def parse_find(body: Any) -> FindRequest:
    """Check and translate the JSON body (400 with the reason when it is wrong)."""
    if not isinstance(body, dict):
        raise OrthancError(400, BAD_REQUEST, "The body must contain a JSON object")
    level_name = body.get("Level")
    if not isinstance(level_name, str) or level_name.lower() not in LEVELS:
        raise OrthancError(
            400, PARAMETER_OUT_OF_RANGE, '"Level" must be Patient, Study, Series or Instance'
        )
    level = LEVELS[level_name.lower()]
    raw_query = body.get("Query")
    if not isinstance(raw_query, dict):
        raise OrthancError(400, BAD_REQUEST, 'Field "Query" is missing, or should be a JSON object')
    filters: dict[str, str] = {}
    kinds: dict[str, MatchKind] = {}
    for name, value in raw_query.items():
        if not isinstance(value, str):
            raise OrthancError(400, BAD_REQUEST, f"the value of {name!r} must be a string")
        keyword = keyword_of(name)
        if keyword == "Modality" and level == Level.STUDY:
            keyword = "ModalitiesInStudy"  # a study matches when one of its series does
        text = value.strip()
        if text.replace("*", "") == "":
            continue  # universal match
        filters[keyword] = text
        if keyword not in INDEXED:
            kinds[keyword] = kind_for_vr(str(dictionary_VR(keyword)))
    labels = body.get("Labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise OrthancError(400, BAD_REQUEST, '"Labels" must be a list of strings')
    constraint = body.get("LabelsConstraint", "All")
    if constraint not in ("All", "Any", "None"):
        raise OrthancError(400, BAD_REQUEST, '"LabelsConstraint" must be All, Any or None')
    requested = body.get("RequestedTags", [])
    if not isinstance(requested, list) or not all(isinstance(t, str) for t in requested):
        raise OrthancError(400, BAD_REQUEST, '"RequestedTags" must be a list of tag names')
    case_sensitive = body.get("CaseSensitive", False)
    expand = body.get("Expand", False)
    if not isinstance(case_sensitive, bool) or not isinstance(expand, bool):
        raise OrthancError(400, BAD_REQUEST, '"CaseSensitive" and "Expand" must be booleans')
    query = Query(
        level=level,
        filters=filters,
        limit=_int_field(body, "Limit"),
        offset=_int_field(body, "Since"),
        kinds=kinds,
        ignore_case=not case_sensitive,
    )
    return FindRequest(
        query,
        expand,
        case_sensitive,
        tuple(keyword_of(t) for t in requested),
        tuple(check_label(label) for label in labels),
        constraint,
        parse_order_by(body.get("OrderBy"), keyword_of),
        parse_response_content(body.get("ResponseContent")),
        parse_parents(body, level),
    )


def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _case_sensitive_names(find: FindRequest, records: list[Record]) -> list[Record]:
    """Person names match case-insensitively in the core; CaseSensitive narrows them here."""
    checks = [
        (keyword, _wildcard(pattern))
        for keyword, pattern in find.query.filters.items()
        if keyword in INDEXED and INDEXED[keyword].kind == "pn"
    ]
    if not checks:
        return records
    return [
        r
        for r in records
        if all(regex.match(str(r.values.get(keyword) or "")) for keyword, regex in checks)
    ]


def _narrowed(archive: Archive, find: FindRequest, records: list[Record]) -> list[Record]:
    """Filters and ordering done here, then the page (``Since``, ``Limit``)."""
    level = find.query.level
    if find.case_sensitive:
        records = _case_sensitive_names(find, records)
    if find.parents:
        records = under_parents(archive, records, find.parents)
    if find.labels:
        by_pk = {r.pks[level]: r for r in records}
        kept = archive.labels.select(level, list(by_pk), find.labels, find.labels_constraint)
        records = [by_pk[pk] for pk in kept]
    records = order_records(archive, find.query, records, find.order_by)
    end = find.query.offset + find.query.limit if find.query.limit else None
    return records[find.query.offset : end]


def run_find(archive: Archive, find: FindRequest) -> list[Any]:
    """The matching resources: ids, or Orthanc's expanded objects."""
    query = find.query
    narrow = find.case_sensitive and any(
        k in INDEXED and INDEXED[k].kind == "pn" for k in query.filters
    )
    narrow |= bool(find.labels or find.order_by or find.parents)
    if narrow:  # page after the narrowing done here
        query = replace(query, limit=0, offset=0)
    records, python_filters = archive.index.find(query)
    records = filter_records(archive.index, query, records, python_filters, archive.text_charset())
    level = query.level
    if narrow:
        records = _narrowed(archive, find, records)
    pks = [r.pks[level] for r in records]
    if not find.expand and find.response_content is None:
        return archive.resources.public_ids_of_pks(level, pks)
    resources = archive.resources.by_pks(level, pks)
    shaped = ShapeBuilder(archive).expand(resources)
    if find.requested_tags:
        values = tag_values(archive, query, records, find.requested_tags)
        for body, tags in zip(shaped, values, strict=True):
            body["RequestedTags"] = tags
    if find.response_content is not None:
        content = find.response_content
        for body, resource in zip(shaped, resources, strict=True):
            if "Labels" in content:
                body["Labels"] = archive.labels.labels(level, resource.pk)
            if "Metadata" in content:
                body["Metadata"] = metadata_of(resource)
            if "IsProtected" in content:
                body["IsProtected"] = False
        shaped = [dict(sorted(shape_content(b, content).items())) for b in shaped]
    return shaped


async def find_handler(request: web.Request) -> web.Response:
    """``POST /tools/find``."""
    find = parse_find(await json_body(request))
    return json_response(await asyncio.to_thread(run_find, archive_of(request), find))


async def lookup_handler(request: web.Request) -> web.Response:
    """``POST /tools/lookup``: resources whose identifier is the body."""
    value = (await request.read()).decode("utf-8", "replace").strip()
    if not value:
        raise OrthancError(400, BAD_REQUEST, "the body must be an identifier")
    found = await asyncio.to_thread(archive_of(request).resources.lookup, value)
    return json_response(
        [
            {"ID": public_id, "Path": f"/{PATH_NAME[level]}/{public_id}", "Type": TYPE_NAME[level]}
            for level, public_id in found
        ]
    )


def add_routes(app: web.Application) -> None:
    """Register the tool routes."""
    add_route(app, "POST", "/tools/find", find_handler)
    add_route(app, "POST", "/tools/lookup", lookup_handler)
