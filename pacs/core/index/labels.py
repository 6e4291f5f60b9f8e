"""Labels on patients, studies, series and instances (integrators and the AI tag studies).

One table a level, each row cascading away with its resource.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pacs.core.errors import InvalidQuery
from pacs.core.index.db import Database
from pacs.core.model import Level

Constraint = Literal["All", "Any", "None"]
_TABLE: dict[Level, str] = {
    Level.PATIENT: "patient_labels",
    Level.STUDY: "study_labels",
    Level.SERIES: "series_labels",
    Level.IMAGE: "instance_labels",
}
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CHUNK = 500


def check_label(label: str) -> str:
    """A label is 1 to 64 letters, digits, ``_`` or ``-`` (as Orthanc's); InvalidQuery if not."""
    if not _VALID.match(label):
        raise InvalidQuery(f"invalid label {label!r}: 1-64 letters, digits, '_' or '-'")
    return label


class LabelIndex:
    """Add, remove and read labels; select resources by label."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.database.reader() as conn:
            return conn.execute(sql, params)

    def labels(self, level: Level, pk: int) -> list[str]:
        """The labels of one resource, sorted."""
        rows = self._run(
            f"SELECT label FROM {_TABLE[level]} WHERE resource_pk = ? ORDER BY label", (pk,)
        )
        return [str(row[0]) for row in rows]

    def add(self, level: Level, pk: int, label: str) -> None:
        """Label a resource (no-op when it already has the label)."""
        self._run(
            f"INSERT INTO {_TABLE[level]} (resource_pk, label) VALUES (?, ?) "
            "ON CONFLICT (resource_pk, label) DO NOTHING",
            (pk, check_label(label)),
        )

    def remove(self, level: Level, pk: int, label: str) -> None:
        """Take a label off a resource (no-op when it does not have it)."""
        self._run(
            f"DELETE FROM {_TABLE[level]} WHERE resource_pk = ? AND label = ?",
            (pk, check_label(label)),
        )

    def all_labels(self) -> list[str]:
        """Every label in use, sorted."""
        union = " UNION ".join(f"SELECT label FROM {table}" for table in _TABLE.values())
        return sorted(str(row[0]) for row in self._run(union))

    def select(
        self, level: Level, pks: Sequence[int], wanted: Sequence[str], constraint: Constraint
    ) -> list[int]:
        """The pks (in order) whose labels satisfy ``constraint`` over ``wanted``."""
        wanted_set = {check_label(label) for label in wanted}
        have: dict[int, set[str]] = {}
        for start in range(0, len(pks), _CHUNK):
            chunk = list(pks[start : start + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            for pk, label in self._run(
                f"SELECT resource_pk, label FROM {_TABLE[level]} WHERE resource_pk IN ({marks})",
                chunk,
            ):
                have.setdefault(int(pk), set()).add(str(label))
        if constraint == "All":
            return [pk for pk in pks if wanted_set <= have.get(pk, set())]
        if constraint == "Any":
            return [pk for pk in pks if wanted_set & have.get(pk, set())]
        return [pk for pk in pks if not wanted_set & have.get(pk, set())]
