"""Turning index records into query answers (pydicom Datasets holding the return keys)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from pacs.core.dicom_header import parse_stored_header
from pacs.core.index.sql_index import Record, SqlIndex
from pacs.core.model import COMPUTED, INDEXED, UNIQUE_KEY, Level, level_of
from pacs.core.query import Query, value_matches

log = logging.getLogger(__name__)


def _needs_header(query: Query, python_filters: dict[str, str]) -> bool:
    if python_filters:
        return True
    return any(
        key not in INDEXED and key not in COMPUTED and level_of(key) <= query.level
        for key in query.return_keys
    )


def _header_datasets(
    index: SqlIndex, level: Level, records: Sequence[Record]
) -> dict[int, Dataset]:
    raw = index.representative_headers(level, [r.pks[level] for r in records])
    parsed: dict[int, Dataset] = {}
    for pk, header in raw.items():
        try:
            parsed[pk] = parse_stored_header(header)
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
        value_matches(query.kind_of(keyword), pattern, _header_text(header, keyword))
        for keyword, pattern in filters.items()
    )


def _apply_python_filters(
    query: Query, records: list[Record], python_filters: dict[str, str], headers: dict[int, Dataset]
) -> list[Record]:
    kept = [r for r in records if _passes(query, python_filters, headers.get(r.pks[query.level]))]
    end = query.offset + query.limit if query.limit else None
    return kept[query.offset : end]


def filter_records(
    index: SqlIndex, query: Query, records: list[Record], python_filters: dict[str, str]
) -> list[Record]:
    """The records that also pass the filters the index could not express in SQL."""
    if not python_filters or not records:
        return records
    headers = _header_datasets(index, query.level, records)
    return _apply_python_filters(query, records, python_filters, headers)


def _set(ds: Dataset, keyword: str, value: Any) -> None:
    tag = tag_for_keyword(keyword)
    if tag is None:
        return
    vr = dictionary_VR(tag)
    if value in ("", None, []):
        value = None
    elif vr == "IS" and isinstance(value, int | float):
        value = str(int(value))
    ds.add_new(tag, vr, value)


def _has_non_ascii(ds: Dataset) -> bool:
    for element in ds:
        text_vr = element.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC")
        if text_vr and element.value and not str(element.value).isascii():
            return True
    return False


def build_answers(
    index: SqlIndex, query: Query, records: list[Record], python_filters: dict[str, str]
) -> list[Dataset]:
    """Apply the Python-side filters, then build one Dataset per match with the return keys."""
    headers: dict[int, Dataset] = {}
    if records and _needs_header(query, python_filters):
        headers = _header_datasets(index, query.level, records)
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
    for level in Level:
        if level <= query.level and UNIQUE_KEY[level] not in keys and level == query.level:
            keys.append(UNIQUE_KEY[level])
    answers = []
    for record in records:
        ds = Dataset()
        header = headers.get(record.pks[query.level])
        for keyword in keys:
            key_level = level_of(keyword)
            if key_level > query.level:
                _set(ds, keyword, None)
            elif keyword in INDEXED:
                _set(ds, keyword, record.values.get(keyword))
            elif keyword == "SOPClassesInStudy":
                _set(ds, keyword, sop_classes.get(record.pks[Level.STUDY]))
            elif keyword in COMPUTED:
                level = COMPUTED[keyword][0]
                values = computed.get(level, {}).get(record.pks[level], {})
                _set(ds, keyword, values.get(keyword, 0 if keyword.startswith("Number") else None))
            elif header is not None and keyword in header:
                try:
                    ds[header[keyword].tag] = header[keyword]
                except Exception:
                    _set(ds, keyword, None)
            else:
                _set(ds, keyword, None)
        ds.QueryRetrieveLevel = query.level.name
        if _has_non_ascii(ds):
            ds.SpecificCharacterSet = "ISO_IR 192"
        answers.append(ds)
    return answers
