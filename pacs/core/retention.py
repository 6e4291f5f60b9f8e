"""The retention pass: every study is weighed against the retention policies; those past
their keep are listed (``report``) or deleted into the trash (``delete``: still restorable
during the grace period). Held studies are never deleted.

Age is counted from the Study Date, or from when the study was first received where the
date is absent or malformed. Studies are read a page at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pacs.core.archive import Archive
from pacs.core.errors import NotFound, OnLegalHold
from pacs.core.model import Level
from pacs.core.retention_policy import RetentionPolicy, winning_policy

log = logging.getLogger(__name__)

_PAGE = 1000


@dataclass(frozen=True)
class StudyFacts:
    """What retention needs of one study."""

    study_uid: str
    public_id: str
    patient_id: str
    study_date: str
    received_at: float
    description: str
    modalities: tuple[str, ...]

    def age_days(self, now: float) -> float:
        """Days since the Study Date (or since it was received)."""
        try:
            start = datetime.strptime(self.study_date[:8], "%Y%m%d").replace(tzinfo=UTC)
            began = start.timestamp()
        except ValueError:
            began = self.received_at
        return (now - began) / 86400


@dataclass(frozen=True)
class RetentionEntry:
    """One study past its keep, and what was (or would be) done."""

    study_uid: str
    public_id: str
    patient_id: str
    study_date: str
    age_days: float
    policy: str
    action: str
    outcome: str  # would-delete, deleted, reported, held, gone, failed: ...
    deletion_id: int = 0


@dataclass
class RetentionReport:
    """The outcome of one pass."""

    dry_run: bool
    studies_checked: int = 0
    entries: list[RetentionEntry] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "studies_checked": self.studies_checked,
            "seconds": round(self.seconds, 3),
            "entries": [asdict(e) for e in self.entries],
        }

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for entry in self.entries:
            key = entry.outcome.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        done = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"
        return f"retention{' (dry run)' if self.dry_run else ''}: {self.studies_checked} studies checked: {done}"


def study_facts(archive: Archive) -> Iterator[StudyFacts]:
    """Every study, a page at a time (keyset pagination: short reads)."""
    after = 0
    database = archive.index.database
    while True:
        with database.reader() as conn:
            rows = conn.execute(
                "SELECT st.pk, st.study_uid, st.public_id, p.patient_id, st.study_date, "
                "st.created_at, st.description FROM studies st "
                "JOIN patients p ON p.pk = st.patient_pk WHERE st.pk > ? ORDER BY st.pk LIMIT ?",
                (after, _PAGE),
            )
            if not rows:
                return
            marks = ", ".join("?" * len(rows))
            modalities: dict[int, set[str]] = {}
            for pk, modality in conn.execute(
                f"SELECT DISTINCT study_pk, modality FROM series WHERE study_pk IN ({marks})",
                [r[0] for r in rows],
            ):
                modalities.setdefault(int(pk), set()).add(str(modality))
        for pk, uid, public, patient, date, created, description in rows:
            yield StudyFacts(
                str(uid),
                str(public),
                str(patient),
                str(date),
                float(created),
                str(description),
                tuple(sorted(modalities.get(int(pk), set()))),
            )
        after = int(rows[-1][0])


def run_retention(
    archive: Archive,
    policies: Sequence[RetentionPolicy],
    *,
    dry_run: bool = False,
    now: float | None = None,
    who: str = "retention",
) -> RetentionReport:
    """Weigh every study against the policies; delete (into the trash) or list those past
    their keep. ``dry_run`` only lists what would be deleted."""
    started = time.monotonic()
    now = time.time() if now is None else now
    report = RetentionReport(dry_run)
    if not policies:
        return report
    held_studies = archive.holds.held_studies()
    held_patients = archive.holds.held_patients()
    due: list[tuple[StudyFacts, RetentionPolicy, float]] = []
    for facts in study_facts(archive):
        report.studies_checked += 1
        policy = winning_policy(policies, facts.modalities, facts.description)
        if policy is None:
            continue
        age = facts.age_days(now)
        if age > policy.keep_days:
            due.append((facts, policy, age))
    for facts, policy, age in due:  # acted on after the scan: no page shifts under it
        held = facts.study_uid in held_studies or facts.patient_id in held_patients
        deletion_id = 0
        if policy.action == "report":
            outcome = "reported"
        elif held:
            outcome = "held"
        elif dry_run:
            outcome = "would-delete"
        else:
            outcome, deletion_id = _delete(archive, facts, policy, age, who)
        report.entries.append(
            RetentionEntry(
                facts.study_uid,
                facts.public_id,
                facts.patient_id,
                facts.study_date,
                round(age, 1),
                policy.name,
                policy.action,
                outcome,
                deletion_id,
            )
        )
    report.seconds = time.monotonic() - started
    log.info("%s", report.summary())
    return report


def _delete(
    archive: Archive, facts: StudyFacts, policy: RetentionPolicy, age: float, who: str
) -> tuple[str, int]:
    try:
        deletion = archive.delete(
            Level.STUDY,
            facts.public_id,
            who=who,
            door=f"retention:{policy.name}",
            reason=f"{age / 365.25:.1f} years old; {policy.describe()}",
        )
    except OnLegalHold:
        return "held", 0  # a hold placed since the scan began
    except NotFound:
        return "gone", 0  # deleted meanwhile
    except Exception as exc:  # one study's failure must not stop the pass
        log.exception("retention: deleting study %s failed", facts.study_uid)
        return f"failed: {exc}", 0
    return "deleted", deletion.deletion_id
