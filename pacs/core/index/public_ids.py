"""Fill the public ids of rows indexed before migration 2 (new rows get theirs on insert)."""

from __future__ import annotations

import logging

from pacs.core.ids import public_id
from pacs.core.index.db import Connection

log = logging.getLogger(__name__)

# Each level: its table, and the identifiers its public id is made of, top to bottom.
_MISSING: dict[str, str] = {
    "patients": "SELECT p.pk, p.patient_id FROM patients p WHERE p.public_id IS NULL",
    "studies": (
        "SELECT st.pk, p.patient_id, st.study_uid FROM studies st "
        "JOIN patients p ON p.pk = st.patient_pk WHERE st.public_id IS NULL"
    ),
    "series": (
        "SELECT se.pk, p.patient_id, st.study_uid, se.series_uid FROM series se "
        "JOIN studies st ON st.pk = se.study_pk JOIN patients p ON p.pk = st.patient_pk "
        "WHERE se.public_id IS NULL"
    ),
    "instances": (
        "SELECT i.pk, p.patient_id, st.study_uid, se.series_uid, i.sop_uid FROM instances i "
        "JOIN series se ON se.pk = i.series_pk JOIN studies st ON st.pk = se.study_pk "
        "JOIN patients p ON p.pk = st.patient_pk WHERE i.public_id IS NULL"
    ),
}


def backfill_public_ids(conn: Connection) -> int:
    """Compute the missing public ids in one transaction; returns how many rows got one."""
    filled = 0
    with conn.transaction():
        for table, select in _MISSING.items():
            rows = conn.execute(select)
            if not rows:
                continue
            conn.execute_many(
                f"UPDATE {table} SET public_id = ? WHERE pk = ?",
                [(public_id(*(str(v) for v in row[1:])), row[0]) for row in rows],
            )
            filled += len(rows)
    if filled:
        log.info("index: public ids computed for %d rows indexed before migration 2", filled)
    return filled
