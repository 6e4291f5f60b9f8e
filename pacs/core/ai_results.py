"""AI results (one per series and model version), the study worklist they order, and the
readers' feedback on each flag."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.index.db import Database

VERDICTS = ("confirmed", "rejected")


@dataclass(frozen=True)
class AiResult:
    """What one model version concluded about one series."""

    study_uid: str
    series_uid: str
    model_name: str
    model_version: str
    finding: str
    score: float
    threshold: float
    flagged: bool
    clinical_use: bool
    sr_sop_uid: str
    heatmap_sop_uid: str = ""
    details: dict[str, Any] = field(default_factory=dict)


_RESULT_COLUMNS = (
    "r.pk, r.study_uid, r.series_uid, r.model_name, r.model_version, r.finding, r.score, "
    "r.threshold, r.flagged, r.clinical_use, r.sr_sop_uid, r.heatmap_sop_uid, r.details, "
    "r.created_at, (SELECT f.verdict FROM ai_feedback f WHERE f.result_pk = r.pk "
    "ORDER BY f.pk DESC LIMIT 1)"
)


def _result_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (pk, study, series, name, version, finding, score, threshold, flagged, clinical) = row[:10]
    sr_uid, heatmap_uid, details, created, verdict = row[10:15]
    return {
        "id": int(pk),
        "study_uid": study,
        "series_uid": series,
        "model": {"name": name, "version": version, "clinical_use": bool(clinical)},
        "finding": finding,
        "score": float(score),
        "threshold": float(threshold),
        "flagged": bool(flagged),
        "sr_sop_uid": sr_uid,
        "heatmap_sop_uid": heatmap_uid,
        "details": json.loads(details) if details else {},
        "created_at": float(created),
        "feedback": verdict,
        "research_use_only": not bool(clinical),
    }


class AiResults:
    """Reads and writes ``ai_results`` and ``ai_feedback``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record(self, result: AiResult) -> int:
        """Insert or replace the result of this series and model version; returns its id."""
        now = time.time()
        values = (
            result.study_uid,
            result.finding,
            result.score,
            result.threshold,
            int(result.flagged),
            int(result.clinical_use),
            result.sr_sop_uid,
            result.heatmap_sop_uid,
            json.dumps(result.details, sort_keys=True),
            now,
        )
        with self.database.reader() as conn:
            rows = conn.execute(
                "INSERT INTO ai_results (series_uid, model_name, model_version, study_uid, "
                "finding, score, threshold, flagged, clinical_use, sr_sop_uid, heatmap_sop_uid, "
                "details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (series_uid, model_name, model_version) DO UPDATE SET "
                "study_uid = excluded.study_uid, finding = excluded.finding, "
                "score = excluded.score, threshold = excluded.threshold, "
                "flagged = excluded.flagged, clinical_use = excluded.clinical_use, "
                "sr_sop_uid = excluded.sr_sop_uid, heatmap_sop_uid = excluded.heatmap_sop_uid, "
                "details = excluded.details, created_at = excluded.created_at RETURNING pk",
                (result.series_uid, result.model_name, result.model_version, *values),
            )
        return int(rows[0][0])

    def for_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Every result in a study, most urgent first."""
        with self.database.reader() as conn:
            rows = conn.execute(
                f"SELECT {_RESULT_COLUMNS} FROM ai_results r WHERE r.study_uid = ? "
                "ORDER BY r.flagged DESC, r.score DESC",
                (study_uid,),
            )
        return [_result_json(row) for row in rows]

    def get(self, result_id: int) -> dict[str, Any]:
        """One result (raises NotFound)."""
        with self.database.reader() as conn:
            rows = conn.execute(
                f"SELECT {_RESULT_COLUMNS} FROM ai_results r WHERE r.pk = ?", (result_id,)
            )
        if not rows:
            raise NotFound(f"no AI result {result_id}")
        return _result_json(rows[0])

    def worklist(
        self, limit: int = 100, offset: int = 0, flagged_only: bool = False
    ) -> list[dict[str, Any]]:
        """Studies, most urgent first: flagged ones by decreasing score, then the others
        scored, then studies the AI has not read, newest first."""
        flagged_filter = "WHERE r.flagged = 1" if flagged_only else ""
        join = "JOIN" if flagged_only else "LEFT JOIN"
        sql = (
            "WITH best AS (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.study_uid "
            "ORDER BY r.flagged DESC, r.score DESC) AS rank FROM ai_results r), "
            f"r AS (SELECT * FROM best WHERE rank = 1) SELECT {_RESULT_COLUMNS}, "
            "st.study_uid, st.study_date, st.study_time, st.accession, st.description, "
            "p.patient_id, p.patient_name FROM studies st "
            f"JOIN patients p ON p.pk = st.patient_pk {join} r ON r.study_uid = st.study_uid "
            f"{flagged_filter} ORDER BY COALESCE(r.flagged, 0) DESC, COALESCE(r.score, -1) DESC, "
            "st.created_at DESC LIMIT ? OFFSET ?"
        )
        with self.database.reader() as conn:
            rows = conn.execute(sql, (limit, offset))
        entries = []
        for row in rows:
            study_uid, date, time_, accession, description, patient_id, name = row[15:22]
            entries.append(
                {
                    "study_uid": study_uid,
                    "study_date": date,
                    "study_time": time_,
                    "accession": accession,
                    "study_description": description,
                    "patient_id": patient_id,
                    "patient_name": name,
                    "ai": _result_json(row[:15]) if row[0] is not None else None,
                }
            )
        return entries

    def add_feedback(self, result_id: int, verdict: str, reader: str, comment: str = "") -> int:
        """Record a reader confirming or rejecting a flag; returns the feedback id."""
        if verdict not in VERDICTS:
            raise InvalidQuery(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        if not reader.strip():
            raise InvalidQuery("reader is required (who confirms or rejects the flag)")
        self.get(result_id)
        with self.database.reader() as conn:
            rows = conn.execute(
                "INSERT INTO ai_feedback (result_pk, verdict, reader, comment, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING pk",
                (result_id, verdict, reader.strip()[:200], comment[:2000], time.time()),
            )
        return int(rows[0][0])

    def feedback(self, result_id: int) -> list[dict[str, Any]]:
        """Every verdict given on a result, oldest first."""
        with self.database.reader() as conn:
            rows = conn.execute(
                "SELECT pk, verdict, reader, comment, created_at FROM ai_feedback "
                "WHERE result_pk = ? ORDER BY pk",
                (result_id,),
            )
        return [
            {"id": int(pk), "verdict": v, "reader": r, "comment": c, "created_at": float(t)}
            for pk, v, r, c, t in rows
        ]
