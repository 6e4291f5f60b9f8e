"""Retention policies: by age, modality and study description; the longest keep wins; held
studies are never deleted; dry run and real run; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.errors import ConfigError
from pacs.core.retention import run_retention
from pacs.core.retention_policy import RetentionPolicy
from pacs.settings import describe, load_settings
from tests.factories import make_image, make_radiograph, new_uid, to_bytes

YEAR = 365.25

POLICIES = (
    RetentionPolicy("cr", keep_days=10 * YEAR, modality="CR", action="delete"),
    RetentionPolicy("chest", keep_days=20 * YEAR, study_description="*chest*", action="delete"),
    RetentionPolicy("mr", keep_days=5 * YEAR, modality="MR", action="report"),
)


def _store(archive: Archive, *, modality: str, date: str, description: str, patient: str) -> str:
    study_uid = new_uid()
    maker = make_radiograph if modality == "CR" else make_image
    ds = maker(
        modality=modality,
        study_uid=study_uid,
        study_date=date,
        study_description=description,
        patient_id=patient,
    )
    archive.store(to_bytes(ds), "TEST")
    return study_uid


def _stored_studies(archive: Archive) -> set[str]:
    with archive.index.database.reader() as conn:
        return {str(r[0]) for r in conn.execute("SELECT study_uid FROM studies")}


def test_policies_pick_the_right_studies(archive: Archive) -> None:
    today = time.strftime("%Y%m%d")
    old_hand = _store(archive, modality="CR", date="20100101", description="HAND", patient="R1")
    old_chest = _store(
        archive, modality="CR", date="20100101", description="CHEST PA", patient="R2"
    )
    old_ct = _store(archive, modality="CT", date="20000101", description="CT HEAD", patient="R3")
    new_cr = _store(archive, modality="CR", date=today, description="HAND", patient="R4")
    held_cr = _store(archive, modality="CR", date="20050101", description="FOOT", patient="R5")
    undated = _store(archive, modality="CR", date="", description="KNEE", patient="R6")
    old_mr = _store(archive, modality="MR", date="19900101", description="MR SPINE", patient="R7")
    archive.holds.place("STUDY", held_cr, "litigation", "lawyer")
    everything = _stored_studies(archive)

    dry = run_retention(archive, POLICIES, dry_run=True)
    assert dry.studies_checked == 7
    outcomes = {e.study_uid: (e.policy, e.outcome) for e in dry.entries}
    assert outcomes == {
        old_hand: ("cr", "would-delete"),
        held_cr: ("cr", "held"),
        old_mr: ("mr", "reported"),
    }
    assert _stored_studies(archive) == everything  # a dry run deletes nothing

    real = run_retention(archive, POLICIES, who="nightly")
    outcomes = {e.study_uid: e.outcome for e in real.entries}
    assert outcomes == {old_hand: "deleted", held_cr: "held", old_mr: "reported"}
    assert _stored_studies(archive) == everything - {old_hand}
    assert {old_chest, old_ct, new_cr, undated} <= _stored_studies(archive)
    deletion = archive.trash.deletions()[0]
    assert deletion["door"] == "retention:cr" and deletion["who"] == "nightly"
    assert deletion["study_uids"] == [old_hand] and deletion["state"] == "trash"
    # still reversible: the study is in the trash
    assert archive.trash.restore(deletion["id"], "admin").restored == 1
    assert old_hand in _stored_studies(archive)


def test_no_policy_keeps_everything(archive: Archive) -> None:
    _store(archive, modality="CR", date="19800101", description="OLD", patient="R9")
    report = run_retention(archive, ())
    assert report.entries == [] and len(_stored_studies(archive)) == 1


def test_retention_settings(tmp_path: Path) -> None:
    config = tmp_path / "pacs.toml"
    config.write_text(
        "[storage]\ndeletion_grace_days = 7\n"
        '[[storage.retention]]\nname = "cr"\nkeep_years = 10\nmodality = "CR"\n'
        'action = "delete"\n'
        '[[storage.retention]]\nname = "mammo"\nkeep_days = 30\n'
        'study_description = "MAMMO*"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    assert settings.storage.deletion_grace_days == 7
    assert settings.retention == (
        RetentionPolicy("cr", 10 * YEAR, "CR", "", "delete"),
        RetentionPolicy("mammo", 30, "", "MAMMO*", "report"),
    )
    text = describe(settings)
    assert "[[storage.retention]]" in text and "deletion_grace_days = 7" in text
    reread = tmp_path / "again.toml"
    reread.write_text(text, encoding="utf-8")
    assert load_settings(reread, environ={}).retention == settings.retention
    for bad in (
        '[[storage.retention]]\nname = "x"\n',
        '[[storage.retention]]\nname = "x"\nkeep_days = 1\nkeep_years = 1\n',
        '[[storage.retention]]\nname = "x"\nkeep_days = 1\naction = "shred"\n',
        '[[storage.retention]]\nname = "x"\nkeep_days = -1\n',
        '[[storage.retention]]\nname = "x"\nkeep_days = 1\ncolour = "red"\n',
    ):
        config.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigError, match=r"storage\.retention"):
            load_settings(config, environ={})
