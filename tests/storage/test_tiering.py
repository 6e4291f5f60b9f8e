"""Storage tiers in process: the mover (copy, verify, switch, delete), its recovery after a
crash, the policies (age, fill level, prefetch), reads across tiers, unreachable tiers, a
transform, and verification of every tier. Real Archive, real folders, both index backends."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from pacs.core.archive import Archive
from pacs.core.errors import StorageUnavailable
from pacs.core.integrity import Verifier
from pacs.core.model import Level
from pacs.core.tiering import (
    HOT,
    StudyMover,
    TierPolicy,
    TransformedBlob,
)
from pacs.core.tiering.ledger import InFlight, Switch
from pacs.core.tiering.service import TieringConfig, TieringService
from storage import new_key
from tests.factories import make_series, new_uid, to_bytes
from tests.storage.tiered_site import Site, open_site

DAY = 86400.0


@pytest.fixture
def site(index_url: str, tmp_path: Path) -> Iterator[Site]:
    """An archive whose hot tier is one folder and whose cold tier is another."""
    with open_site(index_url, tmp_path) as opened:
        yield opened


def _store_study(
    archive: Archive, count: int = 3, **kwargs: object
) -> tuple[str, dict[str, bytes]]:
    datasets = make_series(count, rows=64, columns=64, **kwargs)
    sent = {}
    for ds in datasets:
        raw = to_bytes(ds)
        archive.store(raw, "TEST")
        sent[str(ds.SOPInstanceUID)] = raw
    return str(datasets[0].StudyInstanceUID), sent


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _tiers_of(archive: Archive, sops: dict[str, bytes]) -> set[str]:
    return {archive.instance(sop).tier for sop in sops}


def _read_all(archive: Archive, sent: dict[str, bytes]) -> None:
    for sop, raw in sent.items():
        assert archive.read_instance(archive.instance(sop)) == raw


def test_a_study_moves_to_cold_and_back_intact(site: Site) -> None:
    study, sent = _store_study(site.archive)
    _, other_sent = _store_study(site.archive, 2)
    report = site.mover.move_study(study, "cold")
    assert report.complete and report.moved == 3
    assert _tiers_of(site.archive, sent) == {"cold"}
    assert len(_files(site.cold_dir)) == 3 and len(_files(site.hot_dir)) == 2  # sources gone
    _read_all(site.archive, sent)
    _read_all(site.archive, other_sent)
    assert site.ledger.in_flight() == {}

    report = site.mover.move_study(study, HOT)
    assert report.complete and report.moved == 3
    assert _tiers_of(site.archive, sent) == {HOT}
    assert _files(site.cold_dir) == [] and len(_files(site.hot_dir)) == 5
    _read_all(site.archive, sent)
    assert Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0).ok


def test_a_study_of_many_batches_moves_with_each_batch_settled(site: Site) -> None:
    study, sent = _store_study(site.archive, 5)
    mover = StudyMover(site.ledger, site.blobs, batch_count=2, copy_threads=2)
    report = mover.move_study(study, "cold")  # batches of 2, 2 and 1
    assert report.complete and report.moved == 5
    assert len(_files(site.cold_dir)) == 5 and _files(site.hot_dir) == []
    assert site.ledger.in_flight() == {}
    _read_all(site.archive, sent)


def test_a_damaged_source_is_not_moved_and_its_copy_is_dropped(site: Site) -> None:
    study, sent = _store_study(site.archive)
    victim = site.archive.instance(next(iter(sent)))
    path = site.blobs.local_path(victim.blob_key)
    assert path is not None
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF  # same size: only the read-back of the copy can tell
    path.write_bytes(bytes(damaged))
    report = site.mover.move_study(study, "cold")
    assert report.moved == 2 and len(report.errors) == 1 and victim.sop_uid in report.errors[0]
    assert site.archive.instance(victim.sop_uid).blob_key == victim.blob_key  # left alone
    assert path.read_bytes() == bytes(damaged) and len(_files(site.cold_dir)) == 2
    assert site.ledger.in_flight() == {}


def test_a_cold_read_is_served_and_asks_for_a_recall(site: Site) -> None:
    study, sent = _store_study(site.archive)
    stale = site.archive.instance(next(iter(sent)))  # looked up before the move
    site.mover.move_study(study, "cold")
    # the row a reader held still leads to the bytes (the index is read again)
    assert site.archive.read_instance(stale) == sent[stale.sop_uid]
    assert [(m.study_uid, m.target, m.reason) for m in site.ledger.pending()] == [
        (study, HOT, "recall")
    ]
    path = site.archive.instance_path(site.archive.instance(stale.sop_uid))
    assert path is not None and path.is_relative_to(site.cold_dir)


def test_age_policy_moves_idle_studies_and_the_service_recalls_on_read(site: Site) -> None:
    idle, idle_sent = _store_study(site.archive)
    busy, busy_sent = _store_study(site.archive)
    config = TieringConfig(policies=(TierPolicy("cold", after_days_without_access=30),))
    service = TieringService(
        site.ledger, site.blobs, site.mover, config, last_change_time=lambda: 0.0
    )
    assert service.apply_policies(now=time.time() + 10 * DAY) == []
    site.ledger.touch({busy: time.time() + 25 * DAY})  # read recently, as seen 31 days on
    planned = service.apply_policies(now=time.time() + 31 * DAY)
    assert [(m.study_uid, m.target, m.reason) for m in planned] == [(idle, "cold", "age")]
    assert [r.complete for r in service.run_pending(limit=5)] == [True]
    assert _tiers_of(site.archive, idle_sent) == {"cold"}
    assert _tiers_of(site.archive, busy_sent) == {HOT}

    site.archive.read_instance(site.archive.instance(next(iter(idle_sent))))
    assert [r.complete for r in service.run_pending()] == [True]
    assert _tiers_of(site.archive, idle_sent) == {HOT}
    _read_all(site.archive, idle_sent)


def test_fill_policy_moves_least_recently_read_until_the_low_watermark(site: Site) -> None:
    studies = [_store_study(site.archive, 2) for _ in range(4)]
    size = sum(len(raw) for raw in studies[0][1].values())
    now = time.time()
    for rank, (study, _) in enumerate(studies):  # study 0 read longest ago
        site.ledger.touch({study: now + rank})
    config = TieringConfig(
        policies=(TierPolicy("cold", hot_fill_high=90, hot_fill_low=60),),
        hot_capacity_bytes=int(size * 4 / 0.95),  # 95 % full
    )
    service = TieringService(
        site.ledger, site.blobs, site.mover, config, last_change_time=lambda: 0.0
    )
    planned = service.apply_policies(now=now + 10)
    # 95 % -> at most 60 %: the two least recently read studies go (to 47.5 %)
    assert sorted(m.study_uid for m in planned) == sorted(s for s, _ in studies[:2])
    assert {m.reason for m in planned} == {"fill"}
    service.run_pending(limit=10)
    assert service.apply_policies(now=now + 20) == []


def test_prefetch_brings_priors_back_when_a_new_study_arrives(site: Site) -> None:
    prior, prior_sent = _store_study(site.archive, patient_id="P-PRIOR", study_date="20200101")
    older, older_sent = _store_study(site.archive, patient_id="P-PRIOR", study_date="20100101")
    stranger, stranger_sent = _store_study(site.archive, patient_id="P-OTHER")
    for study in (prior, older, stranger):
        site.mover.move_study(study, "cold")
    config = TieringConfig(policies=(TierPolicy("cold"),), prefetch_priors=1)
    service = TieringService(
        site.ledger, site.blobs, site.mover, config, last_change_time=lambda: 0.0
    )
    _store_study(site.archive, 1, patient_id="P-PRIOR", study_date="20240101")
    assert service.prefetch() == 1
    service.run_pending(limit=5)
    assert _tiers_of(site.archive, prior_sent) == {HOT}  # the most recent prior
    assert _tiers_of(site.archive, older_sent) == {"cold"}
    assert _tiers_of(site.archive, stranger_sent) == {"cold"}


def test_an_unreachable_cold_tier_leaves_hot_data_readable(site: Site) -> None:
    cold_study, cold_sent = _store_study(site.archive)
    hot_study, hot_sent = _store_study(site.archive)
    site.mover.move_study(cold_study, "cold")
    site.cold_dir.rename(site.cold_dir.with_name("unmounted"))  # the NAS goes away

    _read_all(site.archive, hot_sent)
    stored = site.archive.instance(next(iter(cold_sent)))
    with pytest.raises(StorageUnavailable, match=r"tier .cold..*cannot be reached"):
        site.archive.read_instance(stored)
    assert site.archive.instance_path(stored) is None
    # a move to the missing tier fails without touching the hot copies
    report = site.mover.move_study(hot_study, "cold")
    assert not report.complete and report.moved == 0
    _read_all(site.archive, hot_sent)
    assert not site.cold_dir.exists()  # never recreated on the local disk
    assert site.ledger.in_flight() == {}

    site.cold_dir.with_name("unmounted").rename(site.cold_dir)  # back
    _read_all(site.archive, cold_sent)


def test_recovery_after_a_crash_keeps_the_indexed_copy_only(site: Site) -> None:
    study, sent = _store_study(site.archive, 2)
    first, second = (site.archive.instance(sop) for sop in sent)
    cold = site.blobs.tier("cold")
    # crash 1: the copy was written, the index not switched
    copy_key = new_key()
    with site.blobs.open(first.blob_key) as handle:
        cold.put(copy_key, [handle.read()])
    # crash 2: switched, the source not yet deleted
    moved_key = new_key()
    with site.blobs.open(second.blob_key) as handle:
        info = cold.put(moved_key, [handle.read()])
    site.ledger.request(study, "cold", "manual")
    site.ledger.set_in_flight(
        study,
        [
            InFlight(_pk(site, first.sop_uid), first.blob_key, HOT, copy_key, "cold"),
            InFlight(_pk(site, second.sop_uid), second.blob_key, HOT, moved_key, "cold"),
        ],
    )
    switch = Switch(
        _pk(site, second.sop_uid),
        second.blob_key,
        moved_key,
        "cold",
        info.size,
        info.sha256,
        second.transfer_syntax,
    )
    site.ledger.switch(study, [switch])
    # the in-flight copies are not orphans for verify
    report = Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0)
    assert report.ok and report.orphans == [], report.summary()

    assert site.mover.recover() == 2
    assert not cold.exists(copy_key) and cold.exists(moved_key)
    assert not site.blobs.hot.exists(second.blob_key) and site.blobs.hot.exists(first.blob_key)
    _read_all(site.archive, sent)
    assert site.mover.move_study(study, "cold").complete
    assert _tiers_of(site.archive, sent) == {"cold"}
    assert Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0).ok


def _pk(site: Site, sop_uid: str) -> int:
    with site.archive.index.database.reader() as conn:
        return int(conn.execute("SELECT pk FROM instances WHERE sop_uid = ?", (sop_uid,))[0][0])


def _tag_transform(raw: bytes) -> TransformedBlob:
    """Rewrites the file with a private tag and as Implicit VR Little Endian."""
    ds = dcmread(io.BytesIO(raw))
    block = ds.private_block(0x0011, "TIERTEST", create=True)
    block.add_new(0x01, "LO", "moved")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return TransformedBlob(out.getvalue(), "1.2.840.10008.1.2")


def test_a_transform_rewrites_blobs_and_the_index_follows(site: Site) -> None:
    study, sent = _store_study(site.archive, 2)
    mover = StudyMover(site.ledger, site.blobs, transforms={"cold": _tag_transform})
    assert mover.move_study(study, "cold").complete
    for sop in sent:
        stored = site.archive.instance(sop)
        assert stored.transfer_syntax == "1.2.840.10008.1.2"
        data = site.archive.read_instance(stored)
        assert stored.size == len(data) and data != sent[sop]
        assert dcmread(io.BytesIO(data)).SOPInstanceUID == sop and b"moved" in data
        header = site.archive.instance_headers([stored])[sop]
        assert b"TIERTEST" in header
    assert Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0).ok


def test_a_row_deleted_during_the_copy_is_left_alone(site: Site) -> None:
    study, sent = _store_study(site.archive, 1)
    sop = next(iter(sent))
    public_id = _public_id(site, sop)

    def delete_meanwhile(raw: bytes) -> None:
        site.archive.delete(Level.IMAGE, public_id)
        return None

    mover = StudyMover(site.ledger, site.blobs, transforms={"cold": delete_meanwhile})
    report = mover.move_study(study, "cold")
    assert report.moved == 0 and report.left_alone == 1
    # the copy is gone; the source stays, the trash refers to it and a restore finds it
    assert _files(site.cold_dir) == [] and len(_files(site.hot_dir)) == 1
    deletion = site.archive.trash.deletions()[0]["id"]
    assert site.archive.trash.restore(deletion, "test").restored == 1
    _read_all(site.archive, sent)


def _public_id(site: Site, sop_uid: str) -> str:
    with site.archive.index.database.reader() as conn:
        return str(
            conn.execute("SELECT public_id FROM instances WHERE sop_uid = ?", (sop_uid,))[0][0]
        )


def test_verify_covers_every_tier(site: Site) -> None:
    study, sent = _store_study(site.archive, 2)
    _store_study(site.archive, 1)
    site.mover.move_study(study, "cold")
    victim = site.archive.instance(next(iter(sent)))
    path = site.archive.instance_path(victim)
    assert path is not None and path.is_relative_to(site.cold_dir)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    orphan = new_key()
    site.blobs.tier("cold").put(orphan, [b"left behind"])
    report = Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0)
    assert report.checked == 3
    assert [p.sop_uid for p in report.corrupt] == [victim.sop_uid]
    assert [o.blob_key for o in report.orphans] == [orphan]


def test_storage_status_counts_each_tier(site: Site) -> None:
    study, sent = _store_study(site.archive, 2)
    _store_study(site.archive, 1, study_uid=new_uid())
    site.mover.move_study(study, "cold")
    status = site.archive.storage_status()
    tiers = {t["name"]: t for t in status["tiers"]}
    assert tiers["cold"]["objects"] == 2 and tiers[HOT]["objects"] == 1
    assert tiers["cold"]["bytes"] == sum(len(raw) for raw in sent.values())
    assert tiers[HOT]["disk_free_bytes"] > 0
    assert status["growth"]["last_7_days"]["objects_per_day"] == round(3 / 7, 1)
