"""The AI jobs and results of deleted series, kept with their deletion (``deletions.ai``,
JSON) and put back by a restore, so a restored series keeps its findings, flags and the
readers' feedback without running the models again.

A result the series got again meanwhile (same model and version) wins over the kept one,
as does a job queued again; nothing is put back for a series the restore did not bring back.
"""

from __future__ import annotations

import json
from typing import Any

from pacs.core.index.db import Connection

_RESULT = (
    "study_uid, series_uid, model_name, model_version, finding, score, threshold, flagged, "
    "clinical_use, sr_sop_uid, heatmap_sop_uid, details, created_at"
)
_FEEDBACK = "verdict, reader, comment, created_at"
_JOB = (
    "series_uid, study_uid, state, generation, due_at, attempts, lease_until, worker, "
    "last_error, created_at, updated_at"
)


def _names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def _placeholders(columns: str) -> str:
    return ", ".join("?" for _ in _names(columns))


def keep(conn: Connection, deletion_id: int, series_uids: list[str]) -> None:
    """Copy the AI jobs and results (with feedback) of these series into the deletion."""
    results: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for uid in series_uids:
        for row in conn.execute(
            f"SELECT pk, {_RESULT} FROM ai_results WHERE series_uid = ?", (uid,)
        ):
            result = dict(zip(_names(_RESULT), row[1:], strict=True))
            result["feedback"] = [
                dict(zip(_names(_FEEDBACK), fb, strict=True))
                for fb in conn.execute(
                    f"SELECT {_FEEDBACK} FROM ai_feedback WHERE result_pk = ? ORDER BY pk",
                    (row[0],),
                )
            ]
            results.append(result)
        jobs.extend(
            dict(zip(_names(_JOB), row, strict=True))
            for row in conn.execute(f"SELECT {_JOB} FROM ai_jobs WHERE series_uid = ?", (uid,))
        )
    if results or jobs:
        conn.execute(
            "UPDATE deletions SET ai = ? WHERE pk = ?",
            (json.dumps({"results": results, "jobs": jobs}), deletion_id),
        )


def restore(conn: Connection, deletion_id: int) -> int:
    """Put back the kept AI jobs and results of the series that are indexed again; returns
    how many results came back."""
    kept = json.loads(conn.execute("SELECT ai FROM deletions WHERE pk = ?", (deletion_id,))[0][0])
    back = {
        uid
        for uid in {r["series_uid"] for r in kept.get("results", []) + kept.get("jobs", [])}
        if conn.execute("SELECT 1 FROM series WHERE series_uid = ?", (uid,))
    }
    restored = 0
    for result in kept.get("results", []):
        if result["series_uid"] not in back:
            continue
        inserted = conn.execute(
            f"INSERT INTO ai_results ({_RESULT}) VALUES ({_placeholders(_RESULT)}) "
            "ON CONFLICT (series_uid, model_name, model_version) DO NOTHING RETURNING pk",
            [result[name] for name in _names(_RESULT)],
        )
        if not inserted:
            continue
        restored += 1
        conn.execute_many(
            f"INSERT INTO ai_feedback (result_pk, {_FEEDBACK}) VALUES (?, "
            f"{_placeholders(_FEEDBACK)})",
            [
                [inserted[0][0], *(fb[name] for name in _names(_FEEDBACK))]
                for fb in result["feedback"]
            ],
        )
    conn.execute_many(
        f"INSERT INTO ai_jobs ({_JOB}) VALUES ({_placeholders(_JOB)}) "
        "ON CONFLICT (series_uid) DO NOTHING",
        [
            [job[name] for name in _names(_JOB)]
            for job in kept.get("jobs", [])
            if job["series_uid"] in back
        ],
    )
    return restored
