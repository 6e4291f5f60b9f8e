"""Translation of a :class:`Query` to SQL over the indexed columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pacs.core.errors import InvalidQuery
from pacs.core.model import INDEXED, IndexedAttribute, Level
from pacs.core.query import (
    Query,
    date_bounds,
    has_wildcard,
    normalize_pattern,
    split_values,
    time_bounds,
    wildcard_to_like,
)

ALIAS: dict[Level, str] = {
    Level.PATIENT: "p",
    Level.STUDY: "st",
    Level.SERIES: "se",
    Level.IMAGE: "i",
}
TABLE: dict[Level, str] = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.IMAGE: "instances",
}
_JOINS: dict[Level, str] = {
    Level.PATIENT: "patients p",
    Level.STUDY: "studies st JOIN patients p ON p.pk = st.patient_pk",
    Level.SERIES: (
        "series se JOIN studies st ON st.pk = se.study_pk JOIN patients p ON p.pk = st.patient_pk"
    ),
    Level.IMAGE: (
        "instances i JOIN series se ON se.pk = i.series_pk "
        "JOIN studies st ON st.pk = se.study_pk JOIN patients p ON p.pk = st.patient_pk"
    ),
}
_NO_LIMIT = 2**62
# Name columns are matched through their folded twin.
_NORMALIZED_COLUMN = {"patient_name": "patient_name_norm", "referring": "referring_norm"}


def selected_attributes(level: Level) -> list[IndexedAttribute]:
    """The indexed attributes of this level and every level above it."""
    return [a for a in INDEXED.values() if a.level <= level]


@dataclass(frozen=True)
class CompiledQuery:
    """SQL text and parameters, plus the filters the index could not express in SQL."""

    sql: str
    params: list[Any]
    columns: list[str]
    python_filters: dict[str, str]


def _column_condition(
    attribute: IndexedAttribute, alias: str, raw: str, ignore_case: bool = False
) -> tuple[str, list[Any]]:
    column = f"{alias}.{_NORMALIZED_COLUMN.get(attribute.column, attribute.column)}"
    kind = attribute.kind
    if ignore_case and kind == "text":
        column, raw = f"LOWER({column})", raw.lower()
    if kind == "int":
        try:
            values = [int(float(v)) for v in split_values(raw)]
        except ValueError:
            raise InvalidQuery(f"{attribute.keyword}: not an integer: {raw!r}") from None
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)
    if kind in ("date", "time"):
        alternatives = split_values(raw) or [raw]
        parts: list[str] = []
        params: list[Any] = []
        for alternative in alternatives:
            bounds = date_bounds(alternative) if kind == "date" else time_bounds(alternative)
            if bounds is None:
                value = alternative.replace(".", "") if kind == "date" else alternative
                if kind == "time":
                    value = time_bounds(f"{value}-{value}")[0]  # type: ignore[index]
                parts.append(f"{column} = ?")
                params.append(value)
                continue
            low, high = bounds
            conditions = [f"{column} <> ''"]
            if low:
                conditions.append(f"{column} >= ?")
                params.append(low)
            if high:
                conditions.append(f"{column} <= ?")
                params.append(high)
            parts.append("(" + " AND ".join(conditions) + ")")
        return "(" + " OR ".join(parts) + ")", params
    pattern = normalize_pattern(kind, raw)
    alternatives = [pattern] if kind == "pn" else split_values(pattern)
    parts = []
    params = []
    exact = [v for v in alternatives if not has_wildcard(v)]
    if exact:
        parts.append(
            f"{column} = ?" if len(exact) == 1 else f"{column} IN ({', '.join('?' * len(exact))})"
        )
        params.extend(exact)
    for alternative in alternatives:
        if has_wildcard(alternative):
            parts.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(wildcard_to_like(alternative))
    if not parts:
        return "1 = 1", []
    return "(" + " OR ".join(parts) + ")", params


def _modalities_condition(raw: str) -> tuple[str, list[Any]]:
    values = split_values(raw)
    exact = [v for v in values if not has_wildcard(v)]
    parts: list[str] = []
    params: list[Any] = []
    if exact:
        parts.append(f"x.modality IN ({', '.join('?' * len(exact))})")
        params.extend(exact)
    for value in values:
        if has_wildcard(value):
            parts.append("x.modality LIKE ? ESCAPE '\\'")
            params.append(wildcard_to_like(value))
    if not parts:
        return "1 = 1", []
    return (
        f"EXISTS (SELECT 1 FROM series x WHERE x.study_pk = st.pk AND ({' OR '.join(parts)}))",
        params,
    )


def _sop_classes_condition(raw: str) -> tuple[str, list[Any]]:
    values = split_values(raw)
    return (
        "EXISTS (SELECT 1 FROM series x JOIN instances y ON y.series_pk = x.pk "
        f"WHERE x.study_pk = st.pk AND y.sop_class_uid IN ({', '.join('?' * len(values))}))",
        values,
    )


def compile_query(query: Query, *, order_by_recent: bool = False) -> CompiledQuery:
    """SQL selecting the pks and indexed columns of every level down to the query level."""
    level = query.level
    attributes = selected_attributes(level)
    columns = [f"{ALIAS[lv]}.pk" for lv in Level if lv <= level]
    columns += [f"{ALIAS[a.level]}.{a.column}" for a in attributes]
    conditions: list[str] = []
    params: list[Any] = []
    python_filters: dict[str, str] = {}
    for keyword, raw in query.filters.items():
        attribute = INDEXED.get(keyword)
        if attribute is not None:
            if attribute.level > level:
                continue  # a key below the query level cannot select at this level
            condition, values = _column_condition(
                attribute, ALIAS[attribute.level], raw, query.ignore_case
            )
        elif keyword == "ModalitiesInStudy" and level >= Level.STUDY:
            condition, values = _modalities_condition(raw)
        elif keyword == "SOPClassesInStudy" and level >= Level.STUDY:
            condition, values = _sop_classes_condition(raw)
        elif keyword.startswith("NumberOf"):
            continue  # computed counts are return keys only
        else:
            python_filters[keyword] = raw
            continue
        conditions.append(condition)
        params.extend(values)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    alias = ALIAS[level]
    order = f"{alias}.pk DESC" if order_by_recent else f"{alias}.pk"
    sql = f"SELECT {', '.join(columns)} FROM {_JOINS[level]}{where} ORDER BY {order}"
    if not python_filters and (query.limit or query.offset):
        sql += " LIMIT ? OFFSET ?"
        params.extend([query.limit if query.limit else _NO_LIMIT, query.offset])
    return CompiledQuery(sql=sql, params=params, columns=columns, python_filters=python_filters)
