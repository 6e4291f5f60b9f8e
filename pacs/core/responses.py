"""Turning index records into query answers (pydicom Datasets holding the return keys)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from pacs.core.answer import Answer
from pacs.core.charsets import LATIN1
from pacs.core.dicom_header import parse_stored_header
from pacs.core.index.sql_index import Record, SqlIndex
from pacs.core.model import COMPUTED, INDEXED, UNIQUE_KEY, Level, level_of
from pacs.core.query import Query, value_matches

log = logging.getLogger(__name__)

_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


def _needs_header(query: Query, python_filters: dict[str, str]) -> bool:
    if python_filters:
        return True
    return any(
        key not in INDEXED and key not in COMPUTED and level_of(key) <= query.level
        for key in query.return_keys
    )


def _header_datasets(
    index: SqlIndex, level: Level, records: Sequence[Record], charset: str
) -> dict[int, Dataset]:
    raw = index.representative_headers(level, [r.pks[level] for r in records])
    parsed: dict[int, Dataset] = {}
    for pk, header in raw.items():
        try:
            parsed[pk] = parse_stored_header(header, charset)
        except Exception:  # a stored header that no longer parses: answer without it
            log.warning("cannot parse the stored header of %s row %d", level.name, pk)
    return parsed


def _header_text(dataset: Dataset | None, keyword: str) -> str:
    if dataset is None:
        return ""
    try:
        value = dataset.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _passes(query: Query, filters: dict[str, str], header: Dataset | None) -> bool:
    return all(
        value_matches(
            query.kind_of(keyword),
            pattern,
            _header_text(header, keyword),
            ignore_case=query.ignore_case,
        )
        for keyword, pattern in filters.items()
    )


def _apply_python_filters(
    query: Query, records: list[Record], python_filters: dict[str, str], headers: dict[int, Dataset]
) -> list[Record]:
    kept = [r for r in records if _passes(query, python_filters, headers.get(r.pks[query.level]))]
    end = query.offset + query.limit if query.limit else None
    return kept[query.offset : end]


def filter_records(
    index: SqlIndex,
    query: Query,
    records: list[Record],
    python_filters: dict[str, str],
    charset: str = LATIN1,
) -> list[Record]:
    """The records that also pass the filters the index could not express in SQL (stored
    headers declaring no character set read as ``charset``)."""
    if not python_filters or not records:
        return records
    headers = _header_datasets(index, query.level, records, charset)
    return _apply_python_filters(query, records, python_filters, headers)


@functools.lru_cache(maxsize=4096)
def _tag_and_vr(keyword: str) -> tuple[int, str] | None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    return int(tag), str(dictionary_VR(tag))


def _set(answer: Answer, keyword: str, value: Any) -> None:
    """Add an element from an index value (already valid: no pydicom conversion needed)."""
    entry = _tag_and_vr(keyword)
    if entry is None:
        return
    tag, vr = entry
    if value in ("", None, []):
        value = None
    elif vr == "IS":
        value = str(int(value))
    elif isinstance(value, str):
        answer.non_ascii |= not value.isascii()
    answer.set(tag, vr, value)


def _copy_from_header(answer: Answer, keyword: str, header: Dataset) -> None:
    try:
        element = header[keyword]
        answer.set(int(element.tag), str(element.VR), element)
        answer.non_ascii |= element.VR in _TEXT_VRS and not str(element.value).isascii()
    except Exception:  # an undecodable stored value: answer it empty
        _set(answer, keyword, None)


def build_answers(
    index: SqlIndex,
    query: Query,
    records: list[Record],
    python_filters: dict[str, str],
    charset: str = LATIN1,
) -> list[Answer]:
    """Apply the Python-side filters, then build one Answer per match with the return keys
    (stored headers declaring no character set read as ``charset``)."""
    headers: dict[int, Dataset] = {}
    if records and _needs_header(query, python_filters):
        headers = _header_datasets(index, query.level, records, charset)
    if python_filters:
        records = _apply_python_filters(query, records, python_filters, headers)
    computed: dict[Level, dict[int, dict[str, Any]]] = {}
    wanted_computed = {
        k for k in query.return_keys if k in COMPUTED and COMPUTED[k][0] <= query.level
    }
    for level in sorted({COMPUTED[k][0] for k in wanted_computed}):
        computed[level] = index.counts(level, sorted({r.pks[level] for r in records}))
    sop_classes: dict[int, list[str]] = {}
    if "SOPClassesInStudy" in wanted_computed:
        sop_classes = index.sop_classes_in_studies(sorted({r.pks[Level.STUDY] for r in records}))
    keys = list(query.return_keys)
    if UNIQUE_KEY[query.level] not in keys:
        keys.append(UNIQUE_KEY[query.level])
    answers = []
    for record in records:
        answer = Answer()
        header = headers.get(record.pks[query.level])
        for keyword in keys:
            if level_of(keyword) > query.level:
                _set(answer, keyword, None)
            elif keyword in INDEXED:
                _set(answer, keyword, record.values.get(keyword))
            elif keyword == "SOPClassesInStudy":
                _set(answer, keyword, sop_classes.get(record.pks[Level.STUDY]))
            elif keyword in COMPUTED:
                level = COMPUTED[keyword][0]
                values = computed.get(level, {}).get(record.pks[level], {})
                _set(
                    answer,
                    keyword,
                    values.get(keyword, 0 if keyword.startswith("Number") else None),
                )
            elif header is not None and keyword in header:
                _copy_from_header(answer, keyword, header)
            else:
                _set(answer, keyword, None)
        _set(answer, "QueryRetrieveLevel", query.level.name)
        answers.append(answer)
    return answers
