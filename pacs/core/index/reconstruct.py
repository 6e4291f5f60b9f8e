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
    (found by their UIDs; the last summary wins for shared rows), inside the caller's
    transaction. Returns how many instance rows were updated."""
    now = time.time()
    updated = 0
    for s in summaries:
        rows = conn.execute(
            "UPDATE instances SET sop_class_uid = ?, instance_number = ?, number_of_frames = ? "
            "WHERE sop_uid = ? RETURNING series_pk",
            (s.sop_class_uid, s.instance_number, s.number_of_frames, s.sop_uid),
        )
        if not rows:
            continue  # deleted meanwhile
        updated += 1
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
                rows[0][0],
            ),
        )
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
                rows[0][0],
            ),
        )
        if s.patient_name:  # as at ingest: an instance without a name does not erase it
            conn.execute(
                "UPDATE patients SET patient_name = ?, patient_name_norm = ?, birth_date = ?, "
                "sex = ?, updated_at = ? WHERE pk = (SELECT st.patient_pk FROM studies st "
                "JOIN series se ON se.study_pk = st.pk WHERE se.pk = ?) "
                "AND patient_id = ? AND issuer = ?",  # not the owner of a study received
                (  # with another patient identity (kept under the first one)
                    s.patient_name,
                    normalize_person_name(s.patient_name),
                    s.birth_date,
                    s.sex,
                    now,
                    rows[0][0],
                    s.patient_id,
                    s.issuer,
                ),
            )
    return updated
