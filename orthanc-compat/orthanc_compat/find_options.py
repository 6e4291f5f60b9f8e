"""Orthanc 1.12.5's options of ``/tools/find`` beyond matching: ``OrderBy``, ``ResponseContent``
and ``ParentPatient``/``ParentStudy``/``ParentSeries``; and the values of requested tags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydicom.datadict import tag_for_keyword

from orthanc_compat.errors import BAD_REQUEST, OrthancError
from orthanc_compat.text import element_text
from pacs.core.answer import Answer
from pacs.core.archive import Archive
from pacs.core.errors import NotFound
from pacs.core.index.resources import Resource
from pacs.core.index.sql_index import Record
from pacs.core.model import INDEXED, UNIQUE_KEY, Level
from pacs.core.query import Query
from pacs.core.responses import build_answers

RESPONSE_CONTENT = (
    "MainDicomTags",
    "Metadata",
    "Children",
    "Parent",
    "Labels",
    "Status",
    "IsStable",
    "IsProtected",
    "Attachments",
)
_PARENTS = {
    "ParentPatient": Level.PATIENT,
    "ParentStudy": Level.STUDY,
    "ParentSeries": Level.SERIES,
}
# Keys of the expanded shape each ResponseContent value brings (ID and Type always come).
_SHAPE_KEYS = {
    "MainDicomTags": ("MainDicomTags", "PatientMainDicomTags"),
    "Metadata": ("LastUpdate", "FileSize", "FileUuid", "IndexInSeries"),
    "Children": ("Studies", "Series", "Instances"),
    "Parent": ("ParentPatient", "ParentStudy", "ParentSeries"),
    "Status": ("Status", "ExpectedNumberOfInstances"),
    "IsStable": ("IsStable",),
}


@dataclass(frozen=True)
class OrderKey:
    """One ``OrderBy`` entry: a DICOM keyword or the ``LastUpdate`` metadata, and a direction."""

    kind: str  # "DicomTag" or "Metadata"
    key: str
    descending: bool


def _bad(details: str) -> OrthancError:
    return OrthancError(400, BAD_REQUEST, details)


def parse_order_by(raw: Any, keyword_of: Callable[[str], str]) -> tuple[OrderKey, ...]:
    """``[{"Type": "DicomTag"|"Metadata", "Key": ..., "Direction": "ASC"|"DESC"}, ...]``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad('"OrderBy" must be a list of objects')
    keys = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("Key"), str):
            raise _bad('each "OrderBy" entry is {"Type", "Key", "Direction"}')
        direction = str(entry.get("Direction", "ASC")).upper()
        if direction not in ("ASC", "DESC"):
            raise _bad('"Direction" must be ASC or DESC')
        kind = entry.get("Type")
        if kind == "DicomTag":
            key = keyword_of(entry["Key"])
        elif kind == "Metadata":
            if entry["Key"] != "LastUpdate":
                raise _bad(f"ordering by the metadata {entry['Key']!r} is not supported")
            key = "LastUpdate"
        else:
            raise _bad('"Type" of an "OrderBy" entry must be DicomTag or Metadata')
        keys.append(OrderKey(kind, key, direction == "DESC"))
    return tuple(keys)


def parse_response_content(raw: Any) -> tuple[str, ...] | None:
    """The ``ResponseContent`` list (None when absent)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(v in RESPONSE_CONTENT for v in raw):
        raise _bad(f'"ResponseContent" must be a list of: {", ".join(RESPONSE_CONTENT)}')
    if "Attachments" in raw:
        raise _bad('"Attachments" in "ResponseContent" is not supported (no attachments here)')
    return tuple(raw)


def parse_parents(body: dict[str, Any], level: Level) -> tuple[tuple[Level, str], ...]:
    """``ParentPatient``/``ParentStudy``/``ParentSeries``: ancestors the results must have."""
    parents = []
    for key, parent_level in _PARENTS.items():
        if key not in body:
            continue
        if not isinstance(body[key], str):
            raise _bad(f'"{key}" must be an Orthanc identifier')
        if parent_level >= level:
            raise _bad(f'"{key}" must be above the level of the query')
        parents.append((parent_level, body[key]))
    return tuple(parents)


def answer_values(answer: Answer, keywords: tuple[str, ...]) -> dict[str, str]:
    """The text of each keyword in a built answer (``""`` when it has none)."""
    values: dict[str, str] = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        value = answer.get(int(tag)) if tag is not None else None
        if hasattr(value, "value"):
            value = getattr(value, "value", None)
        values[keyword] = element_text(value) if value is not None else ""
    return values


def tag_values(
    archive: Archive, query: Query, records: list[Record], keywords: tuple[str, ...]
) -> list[dict[str, str]]:
    """For each record, the values of ``keywords`` (index columns, counts, stored headers)."""
    asked = replace(query, return_keys=keywords, limit=0, offset=0, filters={})
    answers = build_answers(archive.index, asked, records, {}, archive.text_charset())
    return [answer_values(answer, keywords) for answer in answers]


def _sort_value(keyword: str, text: str) -> tuple[int, Any]:
    """Empty values first; numbers (IS, US...) compared as numbers, the rest as text."""
    if text == "":
        return (0, "")
    if keyword in INDEXED and INDEXED[keyword].kind == "int":
        try:
            return (1, float(text))
        except ValueError:
            pass
    return (2, text)


def order_records(
    archive: Archive, query: Query, records: list[Record], order: tuple[OrderKey, ...]
) -> list[Record]:
    """The records sorted by the ``OrderBy`` keys (the first key first)."""
    if not order or not records:
        return records
    level = query.level
    tags = tuple(k.key for k in order if k.kind == "DicomTag")
    values = tag_values(archive, query, records, tags) if tags else [{} for _ in records]
    updated: dict[int, float] = {}
    if any(k.kind == "Metadata" for k in order):
        resources = archive.resources.by_pks(level, [r.pks[level] for r in records])
        updated = {r.pk: r.updated_at for r in resources}
    rows = list(zip(records, values, strict=True))
    for key in reversed(order):  # stable sorts, least significant key first
        if key.kind == "Metadata":
            rows.sort(key=lambda row: updated.get(row[0].pks[level], 0.0), reverse=key.descending)
        else:
            name = key.key
            rows.sort(key=lambda row: _sort_value(name, row[1][name]), reverse=key.descending)
    return [record for record, _ in rows]


def under_parents(
    archive: Archive, records: list[Record], parents: tuple[tuple[Level, str], ...]
) -> list[Record]:
    """The records below every given ancestor (none when an ancestor is unknown)."""
    for parent_level, public_id in parents:
        try:
            pk: int | None = archive.resources.get(parent_level, public_id).pk
        except NotFound:
            pk = None
        records = [r for r in records if pk is not None and r.pks.get(parent_level) == pk]
    return records


def shape_content(body: dict[str, Any], content: tuple[str, ...]) -> dict[str, Any]:
    """An expanded resource cut down to what ``ResponseContent`` asks for."""
    kept = {"ID", "Type", "RequestedTags", "Labels", "Metadata", "IsProtected"}
    for name in content:
        kept.update(_SHAPE_KEYS.get(name, ()))
    return {key: value for key, value in body.items() if key in kept}


def records_of(archive: Archive, level: Level, resources: list[Resource]) -> dict[int, Record]:
    """The index records of resources by row key (to build their requested tags)."""
    key = UNIQUE_KEY[level]
    found: dict[int, Record] = {}
    identifiers = [str(r.values.get(key) or "") for r in resources]
    for start in range(0, len(identifiers), 500):
        chunk = [v for v in identifiers[start : start + 500] if v and "\\" not in v]
        if chunk:
            records, _ = archive.index.find(Query(level, filters={key: "\\".join(chunk)}))
            found.update((r.pks[level], r) for r in records)
    return found


def parse_requested_tags(raw: str | None, keyword_of: Callable[[str], str]) -> tuple[str, ...]:
    """The ``requestedTags`` query argument: ``StudyDate;0010,0020``."""
    if not raw:
        return ()
    return tuple(keyword_of(part) for part in raw.split(";") if part.strip())


def with_requested_tags(
    archive: Archive,
    resources: list[Resource],
    shaped: list[dict[str, Any]],
    keywords: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Add ``RequestedTags`` to expanded resources (Orthanc 1.11+)."""
    if not keywords or not resources:
        return shaped
    level = resources[0].level
    found = records_of(archive, level, resources)
    records = [found[r.pk] for r in resources if r.pk in found]
    values = dict(
        zip(
            (r.pks[level] for r in records),
            tag_values(archive, Query(level), records, keywords),
            strict=True,
        )
    )
    for body, resource in zip(shaped, resources, strict=True):
        body["RequestedTags"] = values.get(resource.pk, dict.fromkeys(keywords, ""))
    return shaped
