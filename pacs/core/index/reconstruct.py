"""Indexed attributes read again from the stored headers (Orthanc's ``/reconstruct``): after
the default encoding changed, names indexed with the old one are read right.

Only the attributes are rewritten: UIDs, patient identity, blobs, digests and public ids are
kept, so nothing moves in the hierarchy and no blob is touched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pacs.core.index.db import Connection
from pacs.core.model import InstanceSummary
from pacs.core.names import normalize_person_name


def reindex(conn: Connection, summaries: Sequence[InstanceSummary]) -> int:
    """Rewrite the patient, study, series and instance columns of instances already indexed
    (found by their UIDs), inside the caller's transaction: each instance row, then each
    series, study and patient row once, from the last summary of that series or study (the
    last one with a patient name for the patient).
    Returns how many instance rows were updated."""
    now = time.time()
    updated = 0
    last_of_series: dict[int, InstanceSummary] = {}
    # as at ingest: an instance without a patient name does not erase the patient's
    named_of_study: dict[str, tuple[int, InstanceSummary]] = {}
    for s in summaries:
        rows = conn.execute(
            "UPDATE instances SET sop_class_uid = ?, instance_number = ?, number_of_frames = ? "
            "WHERE sop_uid = ? RETURNING series_pk",
            (s.sop_class_uid, s.instance_number, s.number_of_frames, s.sop_uid),
        )
        if rows:  # else deleted meanwhile
            updated += 1
            last_of_series[int(rows[0][0])] = s
            if s.patient_name:
                named_of_study[s.study_uid] = (int(rows[0][0]), s)
    last_of_study: dict[str, tuple[int, InstanceSummary]] = {}
    for series_pk, s in last_of_series.items():
        _update_series(conn, series_pk, s, now)
        last_of_study[s.study_uid] = (series_pk, s)
    for series_pk, s in last_of_study.values():
        _update_study(conn, series_pk, s, now)
    for series_pk, s in named_of_study.values():
        _update_patient(conn, series_pk, s, now)
    return updated


def _update_series(conn: Connection, series_pk: int, s: InstanceSummary, now: float) -> None:
    conn.execute(
        "UPDATE series SET modality = ?, series_number = ?, description = ?, body_part = ?, "
        "series_date = ?, series_time = ?, updated_at = ? WHERE pk = ?",
        (
            s.modality,
            s.series_number,
            s.series_description,
            s.body_part,
            s.series_date,
            s.series_time,
            now,
            series_pk,
        ),
    )


def _update_study(conn: Connection, series_pk: int, s: InstanceSummary, now: float) -> None:
    """The study of the series ``series_pk``."""
    conn.execute(
        "UPDATE studies SET study_date = ?, study_time = ?, accession = ?, study_id = ?, "
        "description = ?, referring = ?, referring_norm = ?, updated_at = ? "
        "WHERE pk = (SELECT study_pk FROM series WHERE pk = ?)",
        (
            s.study_date,
            s.study_time,
            s.accession,
            s.study_id,
            s.study_description,
            s.referring,
            normalize_person_name(s.referring),
            now,
            series_pk,
        ),
    )


def _update_patient(conn: Connection, series_pk: int, s: InstanceSummary, now: float) -> None:
    """The patient owning the study of ``series_pk``, only when it is the summary's own
    identity (a study received with another patient identity is kept under the first)."""
    conn.execute(
        "UPDATE patients SET patient_name = ?, patient_name_norm = ?, birth_date = ?, "
        "sex = ?, updated_at = ? WHERE pk = (SELECT st.patient_pk FROM studies st "
        "JOIN series se ON se.study_pk = st.pk WHERE se.pk = ?) "
        "AND patient_id = ? AND issuer = ?",
        (
            s.patient_name,
            normalize_person_name(s.patient_name),
            s.birth_date,
            s.sex,
            now,
            series_pk,
            s.patient_id,
            s.issuer,
        ),
    )
