"""The index on SQL: SQLite (embedded default) or PostgreSQL, same statements for both."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pacs.core.errors import DuplicateInstance, InvalidDicom, NotFound
from pacs.core.ids import public_id
from pacs.core.index.db import Connection, Database
from pacs.core.index.find_sql import ALIAS, compile_query, selected_attributes
from pacs.core.index.migrations import migrate
from pacs.core.index.public_ids import backfill_public_ids
from pacs.core.model import (
    InstanceSummary,
    Level,
    StoredInstance,
    StoreOutcome,
)
from pacs.core.names import normalize_person_name
from pacs.core.query import Query

log = logging.getLogger(__name__)

_IN_CHUNK = 500


@dataclass(frozen=True)
class PendingAdd:
    """One instance to index: its summary, where its blob is, and who sent it."""

    summary: InstanceSummary
    blob_key: str
    size: int
    sha256: str
    origin: str
    duplicate_policy: str
    ai_delay: float | None = None  # queue the series for AI, due this many seconds from now


@dataclass(frozen=True)
class AddResult:
    """What indexing did; ``obsolete_blob`` is a blob to delete once committed."""

    outcome: StoreOutcome
    obsolete_blob: str | None = None


@dataclass
class Record:
    """One match of a query: indexed values by keyword and the row keys of each level."""

    values: dict[str, Any]
    pks: dict[Level, int]


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlIndex:
    """Patients, studies, series and instances in four tables, plus a change feed."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def dialect(self) -> str:
        return self.database.dialect

    def initialize(self) -> int:
        """Create or upgrade the schema; returns its version."""
        conn = self.database.connect()
        try:
            version = migrate(conn)
            backfill_public_ids(conn)
            return version
        finally:
            conn.close()

    # --- writes (called from the group-commit thread) -------------------------------------

    def add_batch(
        self, conn: Connection, batch: Sequence[PendingAdd]
    ) -> list[AddResult | Exception]:
        """Index every item in one transaction; an item that fails is rolled back alone."""
        results: list[AddResult | Exception] = []
        with conn.transaction():
            for item in batch:
                conn.execute("SAVEPOINT item")
                try:
                    result: AddResult | Exception = self._add_one(conn, item)
                except Exception as exc:
                    conn.execute("ROLLBACK TO SAVEPOINT item")
                    result = exc
                conn.execute("RELEASE SAVEPOINT item")
                results.append(result)
        return results

    def restore_one(
        self,
        conn: Connection,
        item: PendingAdd,
        received_at: float,
        tier: str = "hot",
        original_size: int | None = None,
    ) -> AddResult:
        """Index an instance again from the trash (inside the caller's transaction), keeping
        its blob, digest, origin, reception time, tier and size as received."""
        result = self._add_one(conn, item)
        conn.execute(
            "UPDATE instances SET received_at = ?, tier = ?, original_size = ? WHERE sop_uid = ?",
            (received_at, tier, original_size, item.summary.sop_uid),
        )
        return result

    def _add_one(self, conn: Connection, item: PendingAdd) -> AddResult:
        s = item.summary
        now = time.time()
        changes: list[tuple[str, str, str]] = []
        patient_pk = self._upsert_patient(conn, s, now, changes)
        study_pk, owner_pk = self._upsert_study(conn, s, patient_pk, now, changes)
        # Public ids follow the hierarchy as stored: a study kept under its first patient
        # keeps that patient's id in the ids of its series and instances.
        patient_id = s.patient_id
        if owner_pk != patient_pk:
            patient_id = str(
                conn.execute("SELECT patient_id FROM patients WHERE pk = ?", (owner_pk,))[0][0]
            )
        chain = (patient_id, s.study_uid, s.series_uid)
        series_pk = self._upsert_series(conn, s, study_pk, public_id(*chain), now, changes)
        existing = conn.execute(
            "SELECT pk, blob_key FROM instances WHERE sop_uid = ?", (s.sop_uid,)
        )
        values = (
            series_pk,
            s.sop_class_uid,
            s.instance_number,
            s.transfer_syntax,
            s.number_of_frames,
            item.blob_key,
            item.size,
            item.sha256,
            s.header,
            item.origin,
            now,
            public_id(*chain, s.sop_uid),
        )
        if existing:
            if item.duplicate_policy == "reject":
                raise DuplicateInstance(f"SOP Instance {s.sop_uid} is already stored")
            if item.duplicate_policy == "ignore":
                return AddResult(StoreOutcome.DUPLICATE_IGNORED)
            pk, old_key = existing[0]
            conn.execute(
                "UPDATE instances SET series_pk = ?, sop_class_uid = ?, instance_number = ?, "
                "transfer_syntax = ?, number_of_frames = ?, blob_key = ?, size = ?, sha256 = ?, "
                "header = ?, origin = ?, received_at = ?, public_id = ?, tier = 'hot', "
                "original_size = NULL WHERE pk = ?",
                (*values, pk),
            )
            changes.append(("UpdatedInstance", "IMAGE", s.sop_uid))
            self._record_changes(conn, changes, now)
            self._queue_for_ai(conn, item, now)
            return AddResult(StoreOutcome.REPLACED, obsolete_blob=old_key)
        conn.execute(
            "INSERT INTO instances (series_pk, sop_class_uid, instance_number, transfer_syntax, "
            "number_of_frames, blob_key, size, sha256, header, origin, received_at, public_id, "
            "sop_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, s.sop_uid),
        )
        changes.append(("NewInstance", "IMAGE", s.sop_uid))
        self._record_changes(conn, changes, now)
        self._queue_for_ai(conn, item, now)
        return AddResult(StoreOutcome.STORED)

    @staticmethod
    def _queue_for_ai(conn: Connection, item: PendingAdd, now: float) -> None:
        """The transactional outbox: (re)queue the series in the instance's own transaction.
        Each new instance pushes the due time back (the series is processed once stable) and
        bumps the generation, so a run of an older state of the series cannot close the job."""
        if item.ai_delay is None:
            return
        conn.execute(
            "INSERT INTO ai_jobs (series_uid, study_uid, state, generation, due_at, attempts, "
            "lease_until, worker, last_error, created_at, updated_at) "
            "VALUES (?, ?, 'pending', 1, ?, 0, 0, '', '', ?, ?) "
            "ON CONFLICT (series_uid) DO UPDATE SET state = 'pending', "
            "generation = ai_jobs.generation + 1, due_at = excluded.due_at, attempts = 0, "
            "last_error = '', updated_at = excluded.updated_at",
            (item.summary.series_uid, item.summary.study_uid, now + item.ai_delay, now, now),
        )

    @staticmethod
    def _record_changes(conn: Connection, changes: list[tuple[str, str, str]], now: float) -> None:
        conn.execute_many(
            "INSERT INTO changes (change_type, level, resource_uid, created_at) VALUES (?, ?, ?, ?)",
            [(kind, level, uid, now) for kind, level, uid in changes],
        )

    @staticmethod
    def _upsert_patient(
        conn: Connection, s: InstanceSummary, now: float, changes: list[tuple[str, str, str]]
    ) -> int:
        rows = conn.execute(
            "SELECT pk, patient_name, birth_date, sex FROM patients "
            "WHERE patient_id = ? AND issuer = ?",
            (s.patient_id, s.issuer),
        )
        if rows:
            pk, name, birth, sex = rows[0]
            if (s.patient_name, s.birth_date, s.sex) != (name, birth, sex) and s.patient_name:
                conn.execute(
                    "UPDATE patients SET patient_name = ?, patient_name_norm = ?, birth_date = ?, "
                    "sex = ?, updated_at = ? WHERE pk = ?",
                    (
                        s.patient_name,
                        normalize_person_name(s.patient_name),
                        s.birth_date,
                        s.sex,
                        now,
                        pk,
                    ),
                )
            return int(pk)
        inserted = conn.execute(
            "INSERT INTO patients (patient_id, issuer, patient_name, patient_name_norm, "
            "birth_date, sex, created_at, updated_at, public_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (patient_id, issuer) DO NOTHING RETURNING pk",
            (
                s.patient_id,
                s.issuer,
                s.patient_name,
                normalize_person_name(s.patient_name),
                s.birth_date,
                s.sex,
                now,
                now,
                public_id(s.patient_id),
            ),
        )
        if inserted:
            changes.append(("NewPatient", "PATIENT", s.patient_id))
            return int(inserted[0][0])
        return int(
            conn.execute(
                "SELECT pk FROM patients WHERE patient_id = ? AND issuer = ?",
                (s.patient_id, s.issuer),
            )[0][0]
        )

    @staticmethod
    def _upsert_study(
        conn: Connection,
        s: InstanceSummary,
        patient_pk: int,
        now: float,
        changes: list[tuple[str, str, str]],
    ) -> tuple[int, int]:
        """The study's row key and the row key of the patient it is kept under."""
        rows = conn.execute(
            "SELECT pk, patient_pk FROM studies WHERE study_uid = ?", (s.study_uid,)
        )
        if rows:
            pk, owner = rows[0]
            if owner != patient_pk:
                log.warning(
                    "study %s received with another patient identity; kept under the first one",
                    s.study_uid,
                )
            conn.execute("UPDATE studies SET updated_at = ? WHERE pk = ?", (now, pk))
            return int(pk), int(owner)
        inserted = conn.execute(
            "INSERT INTO studies (study_uid, patient_pk, study_date, study_time, accession, "
            "study_id, description, referring, referring_norm, created_at, updated_at, public_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (study_uid) DO NOTHING RETURNING pk",
            (
                s.study_uid,
                patient_pk,
                s.study_date,
                s.study_time,
                s.accession,
                s.study_id,
                s.study_description,
                s.referring,
                normalize_person_name(s.referring),
                now,
                now,
                public_id(s.patient_id, s.study_uid),
            ),
        )
        if inserted:
            changes.append(("NewStudy", "STUDY", s.study_uid))
            return int(inserted[0][0]), patient_pk
        pk, owner = conn.execute(
            "SELECT pk, patient_pk FROM studies WHERE study_uid = ?", (s.study_uid,)
        )[0]
        return int(pk), int(owner)

    @staticmethod
    def _upsert_series(
        conn: Connection,
        s: InstanceSummary,
        study_pk: int,
        series_public_id: str,
        now: float,
        changes: list[tuple[str, str, str]],
    ) -> int:
        rows = conn.execute("SELECT pk, study_pk FROM series WHERE series_uid = ?", (s.series_uid,))
        if rows:
            pk, owner = rows[0]
            if owner != study_pk:
                raise InvalidDicom(
                    f"series {s.series_uid} already belongs to another study than {s.study_uid}"
                )
            conn.execute("UPDATE series SET updated_at = ? WHERE pk = ?", (now, pk))
            return int(pk)
        inserted = conn.execute(
            "INSERT INTO series (series_uid, study_pk, modality, series_number, description, "
            "body_part, series_date, series_time, created_at, updated_at, public_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (series_uid) DO NOTHING RETURNING pk",
            (
                s.series_uid,
                study_pk,
                s.modality,
                s.series_number,
                s.series_description,
                s.body_part,
                s.series_date,
                s.series_time,
                now,
                now,
                series_public_id,
            ),
        )
        if inserted:
            changes.append(("NewSeries", "SERIES", s.series_uid))
            return int(inserted[0][0])
        return int(
            conn.execute("SELECT pk FROM series WHERE series_uid = ?", (s.series_uid,))[0][0]
        )

    # --- reads -----------------------------------------------------------------------------

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one read statement on a pooled connection."""
        with self.database.reader() as conn:
            return conn.execute(sql, params)

    def has_instance(self, sop_uid: str) -> bool:
        """Whether this SOP Instance UID is indexed."""
        return bool(self._read("SELECT 1 FROM instances WHERE sop_uid = ?", (sop_uid,)))

    def find(self, query: Query) -> tuple[list[Record], dict[str, str]]:
        """Records matching the indexed filters, and the filters left for Python matching."""
        compiled = compile_query(query)
        rows = self._read(compiled.sql, compiled.params)
        levels = [lv for lv in Level if lv <= query.level]
        attributes = selected_attributes(query.level)
        records = []
        for row in rows:
            pks = {lv: int(row[n]) for n, lv in enumerate(levels)}
            values = {a.keyword: row[len(levels) + n] for n, a in enumerate(attributes)}
            records.append(Record(values=values, pks=pks))
        return records, compiled.python_filters

    def representative_headers(self, level: Level, pks: Sequence[int]) -> dict[int, bytes]:
        """For each row of the level, the header of its most recently received instance."""
        if level == Level.IMAGE:
            sql = "SELECT i.pk, i.header FROM instances i WHERE i.pk IN ({marks})"
        else:
            owner = {
                Level.SERIES: "i.series_pk",
                Level.STUDY: "se.study_pk",
                Level.PATIENT: "st.patient_pk",
            }[level]
            sql = (
                f"SELECT {owner}, i.header FROM instances i "
                "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk "
                "WHERE i.pk IN (SELECT MAX(i2.pk) FROM instances i2 "
                "JOIN series se2 ON se2.pk = i2.series_pk JOIN studies st2 ON st2.pk = se2.study_pk "
                f"WHERE {owner.replace('i.', 'i2.').replace('se.', 'se2.').replace('st.', 'st2.')} "
                "IN ({marks}) "
                f"GROUP BY {owner.replace('i.', 'i2.').replace('se.', 'se2.').replace('st.', 'st2.')})"
            )
        result: dict[int, bytes] = {}
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            for pk, header in self._read(sql.format(marks=marks), list(chunk)):
                result[int(pk)] = bytes(header)
        return result

    def counts(self, level: Level, pks: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Computed attributes (counts, modalities, SOP classes) for rows of a level."""
        result: dict[int, dict[str, Any]] = {pk: {} for pk in pks}
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            params = list(chunk)
            if level == Level.PATIENT:
                for pk, studies, series, instances in self._read(
                    "SELECT st.patient_pk, COUNT(DISTINCT st.pk), COUNT(DISTINCT se.pk), "
                    "COUNT(i.pk) FROM studies st LEFT JOIN series se ON se.study_pk = st.pk "
                    "LEFT JOIN instances i ON i.series_pk = se.pk "
                    f"WHERE st.patient_pk IN ({marks}) GROUP BY st.patient_pk",
                    params,
                ):
                    result[int(pk)].update(
                        NumberOfPatientRelatedStudies=studies,
                        NumberOfPatientRelatedSeries=series,
                        NumberOfPatientRelatedInstances=instances,
                    )
            elif level == Level.STUDY:
                modalities: dict[int, set[str]] = {}
                for pk, _series_pk, modality, instances in self._read(
                    "SELECT se.study_pk, se.pk, se.modality, COUNT(i.pk) FROM series se "
                    "LEFT JOIN instances i ON i.series_pk = se.pk "
                    f"WHERE se.study_pk IN ({marks}) GROUP BY se.study_pk, se.pk, se.modality",
                    params,
                ):
                    entry = result[int(pk)]
                    entry["NumberOfStudyRelatedSeries"] = (
                        entry.get("NumberOfStudyRelatedSeries", 0) + 1
                    )
                    entry["NumberOfStudyRelatedInstances"] = (
                        entry.get("NumberOfStudyRelatedInstances", 0) + instances
                    )
                    if modality:
                        modalities.setdefault(int(pk), set()).add(modality)
                for pk, values in modalities.items():
                    result[pk]["ModalitiesInStudy"] = sorted(values)
            elif level == Level.SERIES:
                for pk, instances in self._read(
                    "SELECT series_pk, COUNT(*) FROM instances "
                    f"WHERE series_pk IN ({marks}) GROUP BY series_pk",
                    params,
                ):
                    result[int(pk)]["NumberOfSeriesRelatedInstances"] = instances
        return result

    def sop_classes_in_studies(self, pks: Sequence[int]) -> dict[int, list[str]]:
        """The distinct SOP Class UIDs of each study."""
        result: dict[int, list[str]] = {}
        for chunk in _chunks(list(pks)):
            marks = ", ".join("?" * len(chunk))
            for pk, sop_class in self._read(
                "SELECT DISTINCT se.study_pk, i.sop_class_uid FROM instances i "
                f"JOIN series se ON se.pk = i.series_pk WHERE se.study_pk IN ({marks})",
                list(chunk),
            ):
                result.setdefault(int(pk), []).append(sop_class)
        return {pk: sorted(values) for pk, values in result.items()}

    def instances_under(self, level: Level, pks: Iterable[int]) -> list[StoredInstance]:
        """Every instance below the given rows of a level, ordered for sending."""
        alias = ALIAS[level]
        pk_list = list(pks)
        result: list[StoredInstance] = []
        for chunk in _chunks(pk_list):
            marks = ", ".join("?" * len(chunk))
            rows = self._read(
                "SELECT i.sop_uid, i.sop_class_uid, se.series_uid, st.study_uid, "
                "i.transfer_syntax, i.blob_key, i.size, i.sha256, i.tier FROM instances i "
                "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk "
                f"WHERE {alias}.pk IN ({marks}) "
                "ORDER BY st.pk, se.series_number, se.pk, i.instance_number, i.pk",
                list(chunk),
            )
            result.extend(StoredInstance(*row) for row in rows)
        return result

    def series_instances(self, series_uid: str) -> list[StoredInstance]:
        """Every instance of one series, in instance-number order (empty when unknown)."""
        rows = self._read(
            "SELECT i.sop_uid, i.sop_class_uid, se.series_uid, st.study_uid, i.transfer_syntax, "
            "i.blob_key, i.size, i.sha256, i.tier FROM instances i "
            "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk "
            "WHERE se.series_uid = ? ORDER BY i.instance_number, i.pk",
            (series_uid,),
        )
        return [StoredInstance(*row) for row in rows]

    def instance_headers(self, sop_uids: Sequence[str]) -> dict[str, bytes]:
        """The stored header (Part 10 bytes cut before Pixel Data) of each instance."""
        result: dict[str, bytes] = {}
        for chunk in _chunks(list(sop_uids)):
            marks = ", ".join("?" * len(chunk))
            for sop_uid, header in self._read(
                f"SELECT sop_uid, header FROM instances WHERE sop_uid IN ({marks})", list(chunk)
            ):
                result[str(sop_uid)] = bytes(header)
        return result

    def get_instance(self, sop_uid: str) -> StoredInstance:
        """Where one instance is stored."""
        rows = self._read(
            "SELECT i.sop_uid, i.sop_class_uid, se.series_uid, st.study_uid, i.transfer_syntax, "
            "i.blob_key, i.size, i.sha256, i.tier FROM instances i "
            "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk "
            "WHERE i.sop_uid = ?",
            (sop_uid,),
        )
        if not rows:
            raise NotFound(f"no instance {sop_uid}")
        return StoredInstance(*rows[0])

    def statistics(self) -> dict[str, int]:
        """How many patients, studies, series and instances, and their total size."""
        counts = {
            name: int(self._read(f"SELECT COUNT(*) FROM {name}")[0][0])
            for name in ("patients", "studies", "series", "instances")
        }
        counts["total_size"] = int(self._read("SELECT COALESCE(SUM(size), 0) FROM instances")[0][0])
        return counts

    def last_change_time(self) -> float:
        """When the change feed last grew (0 when empty): a cheap sign of ingest activity."""
        rows = self._read("SELECT created_at FROM changes ORDER BY seq DESC LIMIT 1")
        return float(rows[0][0]) if rows else 0.0

    def changes(self, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The change feed after sequence number ``since``."""
        rows = self._read(
            "SELECT seq, change_type, level, resource_uid, created_at FROM changes "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit),
        )
        return [
            {"seq": seq, "type": kind, "level": level, "uid": uid, "time": created}
            for seq, kind, level, uid, created in rows
        ]
