"""Purging the trash while a cold tier is unreachable (its folder renamed away, as an
unmounted NAS): the purge of that deletion stops cleanly (no blob lost, no row dropped
whose blob still exists, the deletion left ``purging``), housekeeping goes on with the
others, and once the folder is back the next purge finishes it. Real Archive, real
folders, both index backends."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.errors import StorageUnavailable
from pacs.core.housekeeping import Housekeeping
from pacs.core.model import Level
from tests.factories import make_series, new_uid, to_bytes
from tests.storage.tiered_site import Site, open_site


@pytest.fixture
def site(index_url: str, tmp_path: Path) -> Iterator[Site]:
    """A hot folder and a cold folder; deletions expire at once (a tiny grace period)."""
    with open_site(index_url, tmp_path, deletion_grace_days=1e-9) as opened:
        yield opened


def _store_study(archive: Archive, patient_id: str, count: int) -> str:
    study = new_uid()
    for ds in make_series(count, study_uid=study, patient_id=patient_id):
        archive.store(to_bytes(ds), "TEST")
    return study


def _delete_patient(archive: Archive, patient_id: str) -> int:
    with archive.index.database.reader() as conn:
        public_id = conn.execute(
            "SELECT public_id FROM patients WHERE patient_id = ?", (patient_id,)
        )[0][0]
    return archive.delete(Level.PATIENT, str(public_id)).deletion_id


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


def test_purge_stops_on_an_unreachable_tier_and_resumes(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # patient A: one study on the hot tier (trashed first), one moved to the cold tier
    _store_study(site.archive, "A", 2)
    cold_study = _store_study(site.archive, "A", 3)
    assert site.mover.move_study(cold_study, "cold").complete
    _store_study(site.archive, "B", 1)  # patient B: hot only, deleted after A
    cold_blobs = _files(site.cold_dir)
    assert len(cold_blobs) == 3 and len(_files(site.hot_dir)) == 3
    first = _delete_patient(site.archive, "A")
    second = _delete_patient(site.archive, "B")
    time.sleep(0.01)  # both grace periods are over

    away = tmp_path / "nas" / "unmounted"
    site.cold_dir.rename(away)
    housekeeping = Housekeeping(site.archive, [])
    with caplog.at_level(logging.ERROR, logger="pacs.core.trash"):
        housekeeping.run_once(retention=False)  # does not raise
    assert any(
        f"purge of deletion {first} stopped after 2 blobs" in r.getMessage()
        and "resumes" in r.getMessage()
        for r in caplog.records
    ), caplog.text

    record = site.archive.trash.get(first)
    assert record["state"] == "purging" and record["in_trash"] == 3  # the cold rows are kept
    assert _files(away) == cold_blobs  # no cold blob lost
    assert site.archive.trash.get(second)["state"] == "purged"  # the others went on
    assert _files(site.hot_dir) == set()
    assert not site.cold_dir.exists()  # never recreated on the local disk
    with pytest.raises(StorageUnavailable, match="stays purging"):
        site.archive.trash.purge(first, expired_only=False)
    assert site.archive.trash.get(first)["in_trash"] == 3

    away.rename(site.cold_dir)
    result = site.archive.trash.purge()
    assert result.purged == [first] and result.blobs_deleted == 3 and not result.unavailable
    record = site.archive.trash.get(first)
    assert record["state"] == "purged" and record["in_trash"] == 0
    assert _files(site.cold_dir) == set()


def test_restore_stops_on_an_unreachable_tier_and_completes_later(
    site: Site, tmp_path: Path
) -> None:
    """A restore during an outage of the tier holding some trashed blobs must not take them
    for missing (they would be left in the trash, then purged): it stops with
    StorageUnavailable, the deletion stays restorable and out of the purge's reach, and the
    restore completes once the tier is back."""
    hot_study = _store_study(site.archive, "C", 2)
    cold_study = _store_study(site.archive, "C", 3)
    assert site.mover.move_study(cold_study, "cold").complete
    deletion = _delete_patient(site.archive, "C")
    time.sleep(0.01)  # the grace period is over: a purge would take it if it were "trash"

    away = tmp_path / "nas" / "unmounted"
    site.cold_dir.rename(away)
    with pytest.raises(StorageUnavailable, match="stays restorable"):
        site.archive.trash.restore(deletion, "tester")
    assert site.archive.trash.get(deletion)["state"] == "restoring"
    assert not site.archive.trash.purge().purged  # not purged while restoring
    assert len(_files(away)) == 3

    away.rename(site.cold_dir)
    result = site.archive.trash.restore(deletion, "tester")
    assert not result.skipped
    record = site.archive.trash.get(deletion)
    assert record["state"] == "restored" and record["in_trash"] == 0
    with site.archive.index.database.reader() as conn:
        sop_uids = [str(row[0]) for row in conn.execute("SELECT sop_uid FROM instances")]
    assert len(sop_uids) == 5
    studies = {site.archive.instance(uid).study_uid for uid in sop_uids}
    assert studies == {hot_study, cold_study}
    assert all(site.archive.read_instance(site.archive.instance(uid)) for uid in sop_uids)
