"""Browsing the index by public id: one level's rows, their children, parents and descendants.

The REST doors that name resources by id (the Orthanc-compatible API) read through this;
the rows carry the indexed attributes, never a parsed header.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pacs.core.errors import NotFound
from pacs.core.index.db import Database
from pacs.core.index.find_sql import ALIAS, TABLE
from pacs.core.model import INDEXED, IndexedAttribute, Level

_CHUNK = 500
_PARENT_COLUMN: dict[Level, str] = {
    Level.STUDY: "patient_pk",
    Level.SERIES: "study_pk",
    Level.IMAGE: "series_pk",
}
_FROM: dict[Level, str] = {
    Level.PATIENT: "patients p",
    Level.STUDY: "studies st JOIN patients p ON p.pk = st.patient_pk",
    Level.SERIES: "series se JOIN studies st ON st.pk = se.study_pk",
    Level.IMAGE: "instances i JOIN series se ON se.pk = i.series_pk",
}
_PARENT_PUBLIC_ID: dict[Level, str] = {
    Level.PATIENT: "''",
    Level.STUDY: "p.public_id",
    Level.SERIES: "st.public_id",
    Level.IMAGE: "se.public_id",
}
# When a row was last changed (a patient: its most recently updated study).
_UPDATED: dict[Level, str] = {
    Level.PATIENT: (
        "COALESCE((SELECT MAX(x.updated_at) FROM studies x WHERE x.patient_pk = p.pk), "
        "p.updated_at)"
    ),
    Level.STUDY: "st.updated_at",
    Level.SERIES: "se.updated_at",
    Level.IMAGE: "i.received_at",
}
_INSTANCE_EXTRA = ("size", "blob_key", "number_of_frames", "transfer_syntax", "origin")


@functools.cache
def _attributes(level: Level) -> list[IndexedAttribute]:
    """The indexed attributes a row of this level carries (a study: its patient's too)."""
    wanted = {level, Level.PATIENT} if level == Level.STUDY else {level}
    return [a for a in INDEXED.values() if a.level in wanted]


@dataclass(frozen=True)
class Resource:
    """One patient, study, series or instance as the index has it."""

    level: Level
    pk: int
    public_id: str
    parent_id: str
    updated_at: float
    values: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class ResourceIndex:
    """Reads of the index by public id and by row key."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.database.reader() as conn:
            return conn.execute(sql, params)

    @staticmethod
    def _select(level: Level) -> str:
        alias = ALIAS[level]
        columns = [f"{alias}.pk", f"{alias}.public_id", _PARENT_PUBLIC_ID[level], _UPDATED[level]]
        columns += [f"{ALIAS[a.level]}.{a.column}" for a in _attributes(level)]
        if level == Level.IMAGE:
            columns += [f"i.{name}" for name in _INSTANCE_EXTRA]
        return f"SELECT {', '.join(columns)} FROM {_FROM[level]}"

    @staticmethod
    def _resource(level: Level, row: Sequence[Any]) -> Resource:
        attributes = _attributes(level)
        values = {a.keyword: row[4 + n] for n, a in enumerate(attributes)}
        extra: dict[str, Any] = {}
        if level == Level.IMAGE:
            start = 4 + len(attributes)
            extra = dict(zip(_INSTANCE_EXTRA, row[start:], strict=True))
        return Resource(level, int(row[0]), str(row[1]), str(row[2]), float(row[3]), values, extra)

    def page(self, level: Level, since: int = 0, limit: int = 0) -> list[Resource]:
        """Rows of a level in the order they were created, ``since`` skipped, at most ``limit``."""
        sql = f"{self._select(level)} ORDER BY {ALIAS[level]}.pk LIMIT ? OFFSET ?"
        rows = self._read(sql, (limit if limit > 0 else 2**62, max(since, 0)))
        return [self._resource(level, row) for row in rows]

    def public_ids(self, level: Level, since: int = 0, limit: int = 0) -> list[str]:
        """Just the ids of :meth:`page`."""
        sql = f"SELECT public_id FROM {TABLE[level]} ORDER BY pk LIMIT ? OFFSET ?"
        rows = self._read(sql, (limit if limit > 0 else 2**62, max(since, 0)))
        return [str(row[0]) for row in rows]

    def get(self, level: Level, public_id: str) -> Resource:
        """One row by public id (raises NotFound)."""
        rows = self._read(
            f"{self._select(level)} WHERE {ALIAS[level]}.public_id = ? "
            f"ORDER BY {ALIAS[level]}.pk LIMIT 1",
            (public_id,),
        )
        if not rows:
            raise NotFound(f"no {level.name.lower()} {public_id}")
        return self._resource(level, rows[0])

    def by_pks(self, level: Level, pks: Sequence[int]) -> list[Resource]:
        """Rows by row key, in the order of ``pks``."""
        found: dict[int, Resource] = {}
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            for row in self._read(
                f"{self._select(level)} WHERE {ALIAS[level]}.pk IN ({marks})", list(chunk)
            ):
                resource = self._resource(level, row)
                found[resource.pk] = resource
        return [found[pk] for pk in pks if pk in found]

    def public_ids_of_pks(self, level: Level, pks: Sequence[int]) -> list[str]:
        """The public ids of rows by row key, in the order of ``pks``."""
        found: dict[int, str] = {}
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            for pk, public_id in self._read(
                f"SELECT pk, public_id FROM {TABLE[level]} WHERE pk IN ({marks})", list(chunk)
            ):
                found[int(pk)] = str(public_id)
        return [found[pk] for pk in pks if pk in found]

    def children(self, level: Level, pks: Sequence[int]) -> dict[int, list[str]]:
        """The public ids of the children of each row (level is the parents' level)."""
        result: dict[int, list[str]] = {pk: [] for pk in pks}
        if level == Level.IMAGE:
            return result
        child = Level(level + 1)
        parent_column = _PARENT_COLUMN[child]
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            for parent, public_id in self._read(
                f"SELECT {parent_column}, public_id FROM {TABLE[child]} "
                f"WHERE {parent_column} IN ({marks}) ORDER BY pk",
                list(chunk),
            ):
                result[int(parent)].append(str(public_id))
        return result

    def descendants(self, level: Level, pk: int, target: Level) -> list[Resource]:
        """Every row of the ``target`` level below one row of ``level``."""
        if target <= level:
            raise ValueError(f"{target.name} is not below {level.name}")
        pks = [pk]
        for current in range(level + 1, target + 1):
            child = Level(current)
            column = _PARENT_COLUMN[child]
            found: list[int] = []
            for chunk in _chunks(pks):
                marks = ", ".join("?" * len(chunk))
                found += [
                    int(row[0])
                    for row in self._read(
                        f"SELECT pk FROM {TABLE[child]} WHERE {column} IN ({marks}) ORDER BY pk",
                        list(chunk),
                    )
                ]
            pks = found
        return self.by_pks(target, pks)

    def ancestor(self, level: Level, pk: int, target: Level) -> Resource:
        """The row of the ``target`` level above one row of ``level``."""
        if target >= level:
            raise ValueError(f"{target.name} is not above {level.name}")
        current_level, current_pk = level, pk
        while current_level > target:
            column = _PARENT_COLUMN[current_level]
            rows = self._read(
                f"SELECT {column} FROM {TABLE[current_level]} WHERE pk = ?", (current_pk,)
            )
            if not rows:
                raise NotFound(f"no {current_level.name.lower()} row {current_pk}")
            current_level, current_pk = Level(current_level - 1), int(rows[0][0])
        found = self.by_pks(target, [current_pk])
        if not found:
            raise NotFound(f"no {target.name.lower()} row {current_pk}")
        return found[0]

    def lookup(self, value: str) -> list[tuple[Level, str]]:
        """Resources whose PatientID, Study/Series/SOP Instance UID or Accession Number is
        ``value``, top level first."""
        found: list[tuple[Level, str]] = []
        for level, sql in (
            (Level.PATIENT, "SELECT public_id FROM patients WHERE patient_id = ? ORDER BY pk"),
            (
                Level.STUDY,
                "SELECT public_id FROM studies WHERE study_uid = ? OR accession = ? ORDER BY pk",
            ),
            (Level.SERIES, "SELECT public_id FROM series WHERE series_uid = ?"),
            (Level.IMAGE, "SELECT public_id FROM instances WHERE sop_uid = ?"),
        ):
            params = (value, value) if level == Level.STUDY else (value,)
            found += [(level, str(row[0])) for row in self._read(sql, params)]
        return found

    def public_ids_of_uids(self, level: Level, uids: Sequence[str]) -> dict[str, str]:
        """Map DICOM identifiers (PatientID or UIDs) of one level to public ids."""
        column = {
            Level.PATIENT: "patient_id",
            Level.STUDY: "study_uid",
            Level.SERIES: "series_uid",
            Level.IMAGE: "sop_uid",
        }[level]
        result: dict[str, str] = {}
        for chunk in _chunks(sorted(set(uids))):
            marks = ", ".join("?" * len(chunk))
            for uid, public_id in self._read(
                f"SELECT {column}, public_id FROM {TABLE[level]} WHERE {column} IN ({marks})",
                list(chunk),
            ):
                result.setdefault(str(uid), str(public_id))
        return result

    def last_change_seq(self) -> int:
        """The sequence number of the latest change-feed row (0 when the feed is empty)."""
        rows = self._read("SELECT MAX(seq) FROM changes")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def totals(self, level: Level, pk: int) -> dict[str, int]:
        """How many studies, series and instances lie below one row, and their stored size."""
        if level == Level.PATIENT:
            sql = (
                "SELECT COUNT(DISTINCT st.pk), COUNT(DISTINCT se.pk), COUNT(i.pk), "
                "COALESCE(SUM(i.size), 0) FROM studies st "
                "LEFT JOIN series se ON se.study_pk = st.pk "
                "LEFT JOIN instances i ON i.series_pk = se.pk WHERE st.patient_pk = ?"
            )
        elif level == Level.STUDY:
            sql = (
                "SELECT 1, COUNT(DISTINCT se.pk), COUNT(i.pk), COALESCE(SUM(i.size), 0) "
                "FROM series se LEFT JOIN instances i ON i.series_pk = se.pk "
                "WHERE se.study_pk = ?"
            )
        elif level == Level.SERIES:
            sql = (
                "SELECT 1, 1, COUNT(pk), COALESCE(SUM(size), 0) FROM instances WHERE series_pk = ?"
            )
        else:
            sql = "SELECT 1, 1, 1, size FROM instances WHERE pk = ?"
        studies, series, instances, size = self._read(sql, (pk,))[0]
        return {
            "studies": int(studies),
            "series": int(series),
            "instances": int(instances),
            "size": int(size),
        }
