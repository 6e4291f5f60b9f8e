"""Audited, reversible deletion: the trash, restore, purge (also interrupted), legal holds,
and the orphan search leaving trashed blobs alone; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.core.ai_jobs import AiQueuePolicy
from pacs.core.ai_results import AiResult
from pacs.core.archive import Archive
from pacs.core.backup import backup, restore
from pacs.core.errors import Conflict, NotFound, OnLegalHold
from pacs.core.housekeeping import Housekeeping
from pacs.core.ids import public_id
from pacs.core.index.db import Database
from pacs.core.integrity import Verifier
from pacs.core.model import Level
from storage import FileSystemBlobStore
from tests.factories import make_series, new_uid, to_bytes


def _study(archive: Archive, count: int = 3, patient: str = "TR1") -> tuple[str, str, list[str]]:
    """Store one study; its UID, public id and SOP Instance UIDs."""
    series = make_series(count, patient_id=patient)
    for ds in series:
        archive.store(to_bytes(ds), "TEST")
    study_uid = str(series[0].StudyInstanceUID)
    return study_uid, public_id(patient, study_uid), [str(ds.SOPInstanceUID) for ds in series]


def _rows(archive: Archive, sop_uids: list[str]) -> dict[str, tuple[object, ...]]:
    """(blob key, size, sha256, header, reception time) of each stored instance."""
    with archive.index.database.reader() as conn:
        marks = ", ".join("?" * len(sop_uids))
        rows = conn.execute(
            f"SELECT sop_uid, blob_key, size, sha256, header, received_at FROM instances "
            f"WHERE sop_uid IN ({marks})",
            sop_uids,
        )
    return {str(r[0]): (str(r[1]), int(r[2]), str(r[3]), bytes(r[4]), float(r[5])) for r in rows}


def _study_pks(archive: Archive, study_uid: str) -> list[int]:
    with archive.index.database.reader() as conn:
        return [
            int(r[0])
            for r in conn.execute("SELECT pk FROM studies WHERE study_uid = ?", (study_uid,))
        ]


def test_delete_goes_to_the_trash_and_restores_exactly(archive: Archive) -> None:
    study_uid, study_id, sops = _study(archive)
    before = _rows(archive, sops)
    study_pk = _study_pks(archive, study_uid)[0]
    archive.labels.add(Level.STUDY, study_pk, "teaching")
    deletion = archive.delete(
        Level.STUDY, study_id, who="alice", door="test", reason="wrong patient"
    )
    assert deletion.instances == 3 and deletion.blob_keys == []
    assert _study_pks(archive, study_uid) == [] and archive.statistics()["instances"] == 0
    with pytest.raises(NotFound):
        archive.instance(sops[0])
    assert all(archive.blobs.exists(str(row[0])) for row in before.values())
    record = archive.trash.get(deletion.deletion_id)
    assert record["who"] == "alice" and record["door"] == "test"
    assert record["reason"] == "wrong patient" and record["state"] == "trash"
    assert record["study_uids"] == [study_uid] and record["patient_id"] == "TR1"
    assert record["instances"] == 3 and record["bytes"] == sum(
        int(str(v[1])) for v in before.values()
    )
    assert record["in_trash"] == 3
    assert record["purge_after"] > time.time() + 29 * 86400

    result = archive.trash.restore(deletion.deletion_id, "bob")
    assert result.restored == 3 and result.skipped == {}
    assert _rows(archive, sops) == before  # same blobs, digests, headers, reception times
    restored_pk = _study_pks(archive, study_uid)[0]
    assert archive.labels.labels(Level.STUDY, restored_pk) == ["teaching"]
    assert archive.resources.get(Level.STUDY, study_id).public_id == study_id
    record = archive.trash.get(deletion.deletion_id)
    assert record["state"] == "restored" and record["restored_by"] == "bob"
    assert record["in_trash"] == 0
    with pytest.raises(Conflict):
        archive.trash.restore(deletion.deletion_id, "bob")


def test_an_instance_stored_again_while_trashed_wins(archive: Archive) -> None:
    series = make_series(2, patient_id="TR2")
    for ds in series:
        archive.store(to_bytes(ds), "TEST")
    study_id = public_id("TR2", str(series[0].StudyInstanceUID))
    deletion = archive.delete(Level.STUDY, study_id)
    series[0].InstitutionName = "the newer copy"
    archive.store(to_bytes(series[0]), "TEST")  # same SOP Instance UID, new content
    newer = archive.instance(str(series[0].SOPInstanceUID))
    result = archive.trash.restore(deletion.deletion_id, "bob")
    assert result.restored == 1
    assert list(result.skipped) == [str(series[0].SOPInstanceUID)]
    assert archive.instance(str(series[0].SOPInstanceUID)) == newer
    record = archive.trash.get(deletion.deletion_id)
    assert record["restore_skipped"] == 1 and record["in_trash"] == 1
    # the skipped copy is purged at the end of the grace period; the audit row stays
    trashed_key = _trash_keys(archive, deletion.deletion_id)[0]
    purged = archive.trash.purge(now=time.time() + 31 * 86400)
    assert purged.purged == [deletion.deletion_id] and not archive.blobs.exists(trashed_key)
    assert archive.blobs.exists(newer.blob_key)
    assert archive.trash.get(deletion.deletion_id)["state"] == "restored"


def _trash_keys(archive: Archive, deletion_id: int) -> list[str]:
    with archive.index.database.reader() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT blob_key FROM deleted_instances WHERE deletion_pk = ? ORDER BY pk",
                (deletion_id,),
            )
        ]


def test_purge_after_the_grace_period_keeps_the_audit_row(archive: Archive) -> None:
    _, study_id, _ = _study(archive, 2, patient="TR3")
    deletion = archive.delete(Level.STUDY, study_id, who="carol")
    keys = _trash_keys(archive, deletion.deletion_id)
    assert archive.trash.purge().purged == []  # still in its grace period
    with pytest.raises(Conflict):
        archive.trash.purge(deletion.deletion_id)  # expired_only by default
    result = archive.trash.purge(now=time.time() + 31 * 86400)
    assert result.purged == [deletion.deletion_id] and result.blobs_deleted == 2
    assert not any(archive.blobs.exists(key) for key in keys)
    record = archive.trash.get(deletion.deletion_id)
    assert record["state"] == "purged" and record["purged_at"] and record["who"] == "carol"
    assert record["in_trash"] == 0
    with pytest.raises(Conflict):
        archive.trash.restore(deletion.deletion_id, "bob")


def test_a_grace_of_zero_deletes_at_once_but_records_it(index_url: str, tmp_path: Path) -> None:
    archive = Archive.open(index_url, FileSystemBlobStore(tmp_path / "b0"), deletion_grace_days=0)
    try:
        _, study_id, sops = _study(archive, 2, patient="TR4")
        keys = [str(row[0]) for row in _rows(archive, sops).values()]
        deletion = archive.delete(Level.STUDY, study_id, who="dave")
        assert sorted(deletion.blob_keys) == sorted(keys)
        assert not any(archive.blobs.exists(key) for key in keys)
        record = archive.trash.get(deletion.deletion_id)
        assert record["state"] == "purged" and record["who"] == "dave" and record["in_trash"] == 0
    finally:
        archive.close()


def test_legal_hold_blocks_deletion_and_purge(archive: Archive) -> None:
    study_uid, study_id, sops = _study(archive, 2, patient="TR5")
    with pytest.raises(NotFound):
        archive.holds.place("STUDY", new_uid(), "litigation", "lawyer")
    hold = archive.holds.place("STUDY", study_uid, "litigation 42", "lawyer")
    assert hold.set_by == "lawyer" and hold.cleared_at is None
    series_id = public_id("TR5", study_uid, str(archive.instance(sops[0]).series_uid))
    for level, resource in ((Level.STUDY, study_id), (Level.SERIES, series_id)):
        with pytest.raises(OnLegalHold, match="legal hold"):
            archive.delete(level, resource)
    with pytest.raises(OnLegalHold):
        archive.delete(Level.PATIENT, public_id("TR5"))
    assert archive.statistics()["instances"] == 2
    lifted = archive.holds.lift("STUDY", study_uid, "case closed", "judge")
    assert lifted.cleared_by == "judge" and lifted.clear_reason == "case closed"
    deletion = archive.delete(Level.STUDY, study_id)
    # a hold placed on a study in the trash keeps it from being purged
    archive.holds.place("STUDY", study_uid, "new claim", "lawyer")
    result = archive.trash.purge(now=time.time() + 31 * 86400)
    assert result.purged == [] and deletion.deletion_id in result.held
    with pytest.raises(OnLegalHold):
        archive.trash.purge(deletion.deletion_id, expired_only=False)
    assert all(archive.blobs.exists(k) for k in _trash_keys(archive, deletion.deletion_id))
    history = archive.holds.holds(include_cleared=True)
    assert [h.reason for h in history] == ["new claim", "litigation 42"]
    # a patient hold works the same way
    _, other_study, _ = _study(archive, 1, patient="TR6")
    archive.holds.place("PATIENT", "TR6", "patient-wide", "lawyer")
    with pytest.raises(OnLegalHold):
        archive.delete(Level.STUDY, other_study)


class FailingDeletes(FileSystemBlobStore):
    """The real filesystem store whose deletes fail after ``allowed`` of them (a crash
    between blob deletes)."""

    allowed = 10**9

    def delete(self, key: str) -> None:
        if self.allowed <= 0:
            raise OSError("simulated failure between blob deletes")
        self.allowed -= 1
        super().delete(key)


@pytest.fixture
def fragile(index_url: str, tmp_path: Path) -> Iterator[Archive]:
    archive = Archive.open(index_url, FailingDeletes(tmp_path / "fragile"))
    try:
        yield archive
    finally:
        archive.close()


def test_an_interrupted_purge_is_consistent_and_resumes(fragile: Archive) -> None:
    _, study_id, sops = _study(fragile, 5, patient="TR7")
    keys = [str(row[0]) for row in _rows(fragile, sops).values()]
    deletion = fragile.delete(Level.STUDY, study_id)
    assert isinstance(fragile.blobs, FailingDeletes)
    fragile.blobs.allowed = 2
    with pytest.raises(OSError, match="simulated"):
        fragile.trash.purge(deletion.deletion_id, expired_only=False)
    assert sum(fragile.blobs.exists(key) for key in keys) == 3
    record = fragile.trash.get(deletion.deletion_id)
    assert record["state"] == "purging" and record["in_trash"] == 5  # rows outlive their blobs
    with pytest.raises(Conflict):
        fragile.trash.restore(deletion.deletion_id, "bob")  # half purged: not restorable
    report = Verifier(fragile.index.database, fragile.blobs).run(orphan_min_age=0)
    assert report.orphans == [] and report.ok
    fragile.blobs.allowed = 10**9
    result = fragile.trash.purge(now=time.time())  # resumes although not yet expired
    assert result.purged == [deletion.deletion_id]
    assert not any(fragile.blobs.exists(key) for key in keys)
    assert fragile.trash.get(deletion.deletion_id)["state"] == "purged"


def test_trashed_blobs_are_not_orphans(archive: Archive) -> None:
    _, study_id, _ = _study(archive, 3, patient="TR8")
    archive.delete(Level.STUDY, study_id)
    verifier = Verifier(archive.index.database, archive.blobs)
    report = verifier.run(orphan_min_age=0, remove_orphans=True)
    assert report.orphans == [] and report.checked == 3 and report.ok  # trashed blobs checked
    assert archive.trash.restore(archive.trash.deletions()[0]["id"], "x").restored == 3


def test_a_backup_keeps_the_trash_restorable(archive: Archive, tmp_path: Path) -> None:
    if not archive.index.database.url.startswith("sqlite"):
        pytest.skip("the backup round trip is covered here on SQLite only")
    _, study_id, sops = _study(archive, 2, patient="TR9")
    before = _rows(archive, sops)
    deletion = archive.delete(Level.STUDY, study_id)
    result = backup(archive.index.database, archive.blobs, tmp_path / "backup")
    assert (result.copied, result.problems) == (2, [])  # the trashed blobs too
    target = f"sqlite:///{tmp_path / 'site' / 'index.sqlite'}"
    blobs = FileSystemBlobStore(tmp_path / "site" / "blobs")
    database = Database(target)
    try:
        restore(database, blobs, tmp_path / "backup")
    finally:
        database.close()
    site = Archive.open(target, blobs)
    try:
        assert site.trash.restore(deletion.deletion_id, "admin").restored == 2
        assert _rows(site, sops) == before
        assert all(site.read_instance(site.instance(sop)) for sop in sops)
    finally:
        site.close()


def test_housekeeping_purges_what_expired(index_url: str, tmp_path: Path) -> None:
    blobs = FileSystemBlobStore(tmp_path / "hk")
    archive = Archive.open(index_url, blobs, deletion_grace_days=0.5 / 86400)  # half a second
    try:
        _, study_id, sops = _study(archive, 2, patient="TR10")
        keys = [str(row[0]) for row in _rows(archive, sops).values()]
        deletion = archive.delete(Level.STUDY, study_id)
        housekeeping = Housekeeping(archive, ())
        housekeeping.run_once(retention=True)
        assert all(blobs.exists(key) for key in keys)  # not yet
        time.sleep(0.6)
        housekeeping.run_once(retention=True)
        assert not any(blobs.exists(key) for key in keys)
        assert archive.trash.get(deletion.deletion_id)["state"] == "purged"
    finally:
        archive.close()


def test_a_restore_brings_back_the_ai_results_and_jobs(index_url: str, tmp_path: Path) -> None:
    archive = Archive.open(
        index_url, FileSystemBlobStore(tmp_path / "blobs"), ai_policy=AiQueuePolicy(delay=0.0)
    )
    try:
        study_uid, study_id, sops = _study(archive, 2, patient="TRAI")
        series_uid = archive.instance(sops[0]).series_uid
        [job] = archive.ai_queue.claim("w1", 1, 60.0)
        result = AiResult(
            study_uid,
            series_uid,
            "pneumo",
            "1.2",
            "pneumothorax",
            0.91,
            0.5,
            True,
            False,
            "1.2.3",
            details={"images": 2},
        )
        archive.ai_results.add_feedback(
            archive.ai_results.record(result), "confirmed", "dr x", "ok"
        )
        assert archive.ai_queue.finish(job)
        before = archive.ai_results.for_study(study_uid)
        jobs_before = archive.ai_queue.jobs()

        deletion = archive.delete(Level.STUDY, study_id).deletion_id
        assert archive.ai_results.for_study(study_uid) == [] and archive.ai_queue.jobs() == []
        assert archive.trash.restore(deletion, "bob").ai_results == 1
        after = archive.ai_results.for_study(study_uid)
        assert [{**r, "id": 0} for r in after] == [{**r, "id": 0} for r in before]
        assert after[0]["feedback"] == "confirmed" and after[0]["details"] == {"images": 2}
        [feedback] = archive.ai_results.feedback(after[0]["id"])
        assert (feedback["reader"], feedback["comment"]) == ("dr x", "ok")
        assert archive.ai_queue.jobs() == jobs_before  # done: the models do not run again

        archive.delete(Level.STUDY, study_id, hard=True)  # a hard delete keeps nothing
        assert archive.trash.deletions()[0]["state"] == "purged"
        assert archive.ai_results.for_study(study_uid) == []
    finally:
        archive.close()
