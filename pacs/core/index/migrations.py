"""Numbered schema migrations, one template per step, rendered for SQLite or PostgreSQL."""

from __future__ import annotations

import logging
import time

from pacs.core.index.db import Connection, Dialect

log = logging.getLogger(__name__)

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY",
        "blob": "BLOB",
        "float": "REAL",
        "big": "INTEGER",
        "pattern": "",
    },
    "postgresql": {
        "pk": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "blob": "BYTEA",
        "float": "DOUBLE PRECISION",
        "big": "BIGINT",
        "pattern": " text_pattern_ops",
    },
}

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "patients, studies, series, instances, changes",
        [
            """CREATE TABLE patients (
                pk {pk},
                patient_id TEXT NOT NULL,
                issuer TEXT NOT NULL,
                patient_name TEXT NOT NULL,
                patient_name_norm TEXT NOT NULL,
                birth_date TEXT NOT NULL,
                sex TEXT NOT NULL,
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL,
                UNIQUE (patient_id, issuer))""",
            "CREATE INDEX patients_name ON patients (patient_name_norm{pattern})",
            "CREATE INDEX patients_birth ON patients (birth_date)",
            """CREATE TABLE studies (
                pk {pk},
                study_uid TEXT NOT NULL UNIQUE,
                patient_pk {big} NOT NULL REFERENCES patients (pk) ON DELETE CASCADE,
                study_date TEXT NOT NULL,
                study_time TEXT NOT NULL,
                accession TEXT NOT NULL,
                study_id TEXT NOT NULL,
                description TEXT NOT NULL,
                referring TEXT NOT NULL,
                referring_norm TEXT NOT NULL,
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL)""",
            "CREATE INDEX studies_patient ON studies (patient_pk)",
            "CREATE INDEX studies_date ON studies (study_date, study_time)",
            "CREATE INDEX studies_accession ON studies (accession)",
            "CREATE INDEX studies_updated ON studies (updated_at)",
            """CREATE TABLE series (
                pk {pk},
                series_uid TEXT NOT NULL UNIQUE,
                study_pk {big} NOT NULL REFERENCES studies (pk) ON DELETE CASCADE,
                modality TEXT NOT NULL,
                series_number {big},
                description TEXT NOT NULL,
                body_part TEXT NOT NULL,
                series_date TEXT NOT NULL,
                series_time TEXT NOT NULL,
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL)""",
            "CREATE INDEX series_study ON series (study_pk, modality)",
            "CREATE INDEX series_modality ON series (modality)",
            """CREATE TABLE instances (
                pk {pk},
                sop_uid TEXT NOT NULL UNIQUE,
                series_pk {big} NOT NULL REFERENCES series (pk) ON DELETE CASCADE,
                sop_class_uid TEXT NOT NULL,
                instance_number {big},
                transfer_syntax TEXT NOT NULL,
                number_of_frames {big} NOT NULL,
                blob_key TEXT NOT NULL,
                size {big} NOT NULL,
                sha256 TEXT NOT NULL,
                header {blob} NOT NULL,
                origin TEXT NOT NULL,
                received_at {float} NOT NULL)""",
            "CREATE INDEX instances_series ON instances (series_pk, instance_number)",
            "CREATE INDEX instances_class ON instances (sop_class_uid)",
            """CREATE TABLE changes (
                seq {pk},
                change_type TEXT NOT NULL,
                level TEXT NOT NULL,
                resource_uid TEXT NOT NULL,
                created_at {float} NOT NULL)""",
        ],
    ),
    (
        2,
        "AI jobs (a transactional outbox per series), results and readers' feedback",
        [
            """CREATE TABLE ai_jobs (
                pk {pk},
                series_uid TEXT NOT NULL UNIQUE,
                study_uid TEXT NOT NULL,
                state TEXT NOT NULL,
                generation {big} NOT NULL,
                due_at {float} NOT NULL,
                attempts {big} NOT NULL,
                lease_until {float} NOT NULL,
                worker TEXT NOT NULL,
                last_error TEXT NOT NULL,
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL)""",
            "CREATE INDEX ai_jobs_due ON ai_jobs (state, due_at)",
            """CREATE TABLE ai_results (
                pk {pk},
                study_uid TEXT NOT NULL,
                series_uid TEXT NOT NULL,
                model_name TEXT NOT NULL,
                model_version TEXT NOT NULL,
                finding TEXT NOT NULL,
                score {float} NOT NULL,
                threshold {float} NOT NULL,
                flagged {big} NOT NULL,
                clinical_use {big} NOT NULL,
                sr_sop_uid TEXT NOT NULL,
                heatmap_sop_uid TEXT NOT NULL,
                details TEXT NOT NULL,
                created_at {float} NOT NULL,
                UNIQUE (series_uid, model_name, model_version))""",
            "CREATE INDEX ai_results_study ON ai_results (study_uid)",
            "CREATE INDEX ai_results_urgency ON ai_results (flagged, score)",
            """CREATE TABLE ai_feedback (
                pk {pk},
                result_pk {big} NOT NULL REFERENCES ai_results (pk) ON DELETE CASCADE,
                verdict TEXT NOT NULL,
                reader TEXT NOT NULL,
                comment TEXT NOT NULL,
                created_at {float} NOT NULL)""",
            "CREATE INDEX ai_feedback_result ON ai_feedback (result_pk)",
        ],
    ),
    (
        3,
        "public resource ids (SHA-1 of the DICOM identifiers, as Orthanc's), labels",
        [
            statement
            for table, label_table in (
                ("patients", "patient_labels"),
                ("studies", "study_labels"),
                ("series", "series_labels"),
                ("instances", "instance_labels"),
            )
            for statement in (
                f"ALTER TABLE {table} ADD COLUMN public_id TEXT",
                f"CREATE INDEX {table}_public_id ON {table} (public_id)",
                f"CREATE TABLE {label_table} ("
                f"resource_pk {{big}} NOT NULL REFERENCES {table} (pk) ON DELETE CASCADE, "
                "label TEXT NOT NULL, PRIMARY KEY (resource_pk, label))",
                f"CREATE INDEX {label_table}_label ON {label_table} (label)",
            )
        ],
    ),
    (
        4,
        "integrity: the scrub's position and the missing or corrupt objects it found",
        [
            """CREATE TABLE scrub_state (
                name TEXT PRIMARY KEY,
                position {big} NOT NULL,
                passes {big} NOT NULL,
                next_pass_at {float} NOT NULL,
                last_pass_completed_at {float} NOT NULL,
                checked {big} NOT NULL,
                bytes_read {big} NOT NULL,
                updated_at {float} NOT NULL)""",
            """CREATE TABLE integrity_problems (
                pk {pk},
                sop_uid TEXT NOT NULL UNIQUE,
                study_uid TEXT NOT NULL,
                blob_key TEXT NOT NULL,
                kind TEXT NOT NULL,
                expected_size {big} NOT NULL,
                expected_sha256 TEXT NOT NULL,
                found_size {big},
                found_sha256 TEXT,
                detail TEXT NOT NULL,
                state TEXT NOT NULL,
                detected_at {float} NOT NULL,
                updated_at {float} NOT NULL)""",
            "CREATE INDEX integrity_problems_state ON integrity_problems (state)",
            # orphan searches look blobs up by key, a chunk at a time
            "CREATE INDEX instances_blob ON instances (blob_key)",
        ],
    ),
    (
        5,
        "remote modalities added over the REST API (the TOML [[modalities]] are not stored)",
        [
            """CREATE TABLE modalities (
                name TEXT PRIMARY KEY,
                ae_title TEXT NOT NULL,
                host TEXT NOT NULL,
                port {big} NOT NULL,
                options TEXT NOT NULL,
                updated_at {float} NOT NULL)""",
            "CREATE INDEX modalities_ae_title ON modalities (ae_title)",
        ],
    ),
    (
        6,
        "storage tiers: the tier of each instance, study access times, moves between tiers",
        [
            # every existing and newly ingested instance is on the hot tier by default:
            # ingest writes nothing more than before
            "ALTER TABLE instances ADD COLUMN tier TEXT NOT NULL DEFAULT 'hot'",
            # NULL = never read since it arrived (the policy then uses updated_at)
            "ALTER TABLE studies ADD COLUMN last_access {float}",
            # one row per study to move; in_flight lists the copies of the batch under way
            # (JSON), so a restart after a crash removes whichever copy is not indexed
            """CREATE TABLE tier_moves (
                study_uid TEXT PRIMARY KEY,
                target TEXT NOT NULL,
                reason TEXT NOT NULL,
                requested_at {float} NOT NULL,
                attempts {big} NOT NULL,
                next_attempt_at {float} NOT NULL,
                last_error TEXT NOT NULL,
                claimed_by TEXT NOT NULL,
                in_flight TEXT NOT NULL)""",
        ],
    ),
    (
        7,
        "deletions (audit, forever), the trash of deleted instances, legal holds",
        [
            """CREATE TABLE deletions (
                pk {pk},
                created_at {float} NOT NULL,
                who TEXT NOT NULL,
                door TEXT NOT NULL,
                reason TEXT NOT NULL,
                level TEXT NOT NULL,
                resource_uid TEXT NOT NULL,
                public_id TEXT NOT NULL,
                patient_id TEXT NOT NULL,
                patient_name TEXT NOT NULL,
                study_uids TEXT NOT NULL,
                instances {big} NOT NULL,
                bytes {big} NOT NULL,
                labels TEXT NOT NULL,
                state TEXT NOT NULL,
                purge_after {float} NOT NULL,
                purged_at {float},
                restored_at {float},
                restored_by TEXT NOT NULL,
                restore_skipped {big} NOT NULL,
                ai TEXT NOT NULL DEFAULT '{{}}')""",
            "CREATE INDEX deletions_state ON deletions (state, purge_after)",
            """CREATE TABLE deleted_instances (
                pk {pk},
                deletion_pk {big} NOT NULL REFERENCES deletions (pk),
                sop_uid TEXT NOT NULL,
                series_uid TEXT NOT NULL,
                study_uid TEXT NOT NULL,
                patient_id TEXT NOT NULL,
                blob_key TEXT NOT NULL,
                size {big} NOT NULL,
                sha256 TEXT NOT NULL,
                header {blob} NOT NULL,
                origin TEXT NOT NULL,
                received_at {float} NOT NULL,
                note TEXT NOT NULL)""",
            "CREATE INDEX deleted_instances_deletion ON deleted_instances (deletion_pk, pk)",
            # orphan searches look trashed blobs up by key too
            "CREATE INDEX deleted_instances_blob ON deleted_instances (blob_key)",
            "CREATE INDEX deleted_instances_study ON deleted_instances (study_uid)",
            """CREATE TABLE legal_holds (
                pk {pk},
                level TEXT NOT NULL,
                uid TEXT NOT NULL,
                reason TEXT NOT NULL,
                set_by TEXT NOT NULL,
                set_at {float} NOT NULL,
                cleared_by TEXT,
                cleared_at {float},
                clear_reason TEXT)""",
            "CREATE UNIQUE INDEX legal_holds_active ON legal_holds (level, uid) "
            "WHERE cleared_at IS NULL",
        ],
    ),
    (
        8,
        "compressed tiers: each instance's size as received; the tier of trashed instances",
        [
            # NULL = the blob is the file as received; set when a tier's compression
            # rewrote it (the size before, for the space saved)
            "ALTER TABLE instances ADD COLUMN original_size {big}",
            # where a trashed blob is, so a restore indexes it on its tier again
            "ALTER TABLE deleted_instances ADD COLUMN tier TEXT NOT NULL DEFAULT 'hot'",
            "ALTER TABLE deleted_instances ADD COLUMN original_size {big}",
        ],
    ),
    (
        9,
        "jobs of the REST API (Orthanc's /jobs), kept across restarts",
        [
            # one row per job, written when it starts and when it ends; content is the
            # job's JSON content; owner is the server process running it
            # (hostname:pid:start:instance): at start-up a row still running whose owner
            # is gone was interrupted
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                state TEXT NOT NULL,
                progress {big} NOT NULL,
                content TEXT NOT NULL,
                created_at {float} NOT NULL,
                started_at {float} NOT NULL,
                completed_at {float} NOT NULL,
                error_code {big} NOT NULL,
                error_description TEXT NOT NULL,
                error_details TEXT NOT NULL,
                owner TEXT NOT NULL DEFAULT '')""",
            "CREATE INDEX jobs_created ON jobs (created_at)",
        ],
    ),
    (
        10,
        "what a job needs to run again after a restart (its recipe; '' when it cannot)",
        ["ALTER TABLE jobs ADD COLUMN recipe TEXT NOT NULL DEFAULT ''"],
    ),
]


def migrate(conn: Connection) -> int:
    """Apply every migration not yet applied; returns the schema version reached."""
    types = _TYPES[conn.dialect]
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        f"version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {types['float']})"
    )
    with conn.transaction():
        if conn.dialect == "postgresql":
            # Serialise concurrent starts of several server processes.
            conn.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            log.info("index migration %d: %s", version, description)
            for statement in statements:
                conn.execute(statement.format(**types))
            conn.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                (version, description, time.time()),
            )
    return max(version for version, _, _ in MIGRATIONS)
