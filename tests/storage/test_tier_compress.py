"""A compressed cold tier in process: the mover stores JPEG-LS / JPEG 2000 lossless copies
(checked bit-exact before they are written), the index keeps the size as received for the
space saved, a recall keeps the compressed bytes, and the trash works across tiers (delete,
restore onto the right tier, delete again, purge). Real Archive, real folders, both index
backends."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

from pacs.core.archive import Archive
from pacs.core.integrity import Verifier
from pacs.core.model import Level
from pacs.core.tiering import HOT
from pacs.core.tiering.compress import lossless_transform
from pacs.settings import TierSettings, _build_tiers
from tests.factories import make_ct_series, new_uid, to_bytes
from tests.storage.tiered_site import Site, open_site


@pytest.fixture(params=["jpeg-ls", "jpeg2000"])
def site(request: pytest.FixtureRequest, index_url: str, tmp_path: Path) -> Iterator[Site]:
    """A hot folder and a cold folder whose tier compresses with the codec of the param."""
    with open_site(
        index_url, tmp_path, transforms={"cold": lossless_transform(request.param)}
    ) as opened:
        yield opened


def _store(archive: Archive, count: int = 3) -> tuple[str, dict[str, bytes]]:
    sent = {}
    datasets = make_ct_series(count, rows=128, columns=128, study_uid=new_uid())
    for ds in datasets:
        raw = to_bytes(ds)
        archive.store(raw, "TEST")
        sent[str(ds.SOPInstanceUID)] = raw
    return str(datasets[0].StudyInstanceUID), sent


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _pixels(data: bytes) -> np.ndarray:  # type: ignore[type-arg]
    return dcmread(io.BytesIO(data)).pixel_array


def _same_pixels(archive: Archive, sent: dict[str, bytes]) -> None:
    for sop, raw in sent.items():
        data = archive.read_instance(archive.instance(sop))
        assert np.array_equal(_pixels(data), _pixels(raw))


def _tiers(site: Site) -> dict[str, dict[str, int]]:
    return {t["name"]: t for t in site.archive.storage_status()["tiers"]}


def _public_id(site: Site, table: str, column: str, uid: str) -> str:
    with site.archive.index.database.reader() as conn:
        return str(conn.execute(f"SELECT public_id FROM {table} WHERE {column} = ?", (uid,))[0][0])


def _verify_ok(site: Site) -> None:
    report = Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0)
    assert report.ok and not report.orphans, report.summary()


def test_tier_settings_accept_the_codecs_only() -> None:
    from pacs.core.errors import ConfigError
    from pacs.core.lossless import CODECS

    for codec in ["", *CODECS]:
        tiers = _build_tiers([{"name": "cold", "location": "/x", "compress": codec}])
        assert tiers == (TierSettings("cold", "/x", compress=codec),)
    with pytest.raises(ConfigError, match="compress 'zip'"):
        _build_tiers([{"name": "cold", "location": "/x", "compress": "zip"}])


def test_a_study_moved_to_a_compressed_tier_is_smaller_and_pixel_identical(site: Site) -> None:
    study, sent = _store(site.archive)
    _, other = _store(site.archive, 1)
    original = sum(len(raw) for raw in sent.values())
    report = site.mover.move_study(study, "cold")
    assert report.complete and report.moved == 3
    assert report.bytes_read == original and report.bytes_written < original / 2
    assert _size(site.cold_dir) == report.bytes_written
    syntaxes = {site.archive.instance(sop).transfer_syntax for sop in sent}
    assert syntaxes <= {str(JPEGLSLossless), str(JPEG2000Lossless)} and len(syntaxes) == 1
    _same_pixels(site.archive, sent)
    tiers = _tiers(site)
    assert tiers["cold"]["bytes"] == report.bytes_written
    assert tiers["cold"]["original_bytes"] == original
    assert tiers["cold"]["saved_bytes"] == original - report.bytes_written
    assert tiers[HOT]["saved_bytes"] == 0 and tiers[HOT]["original_bytes"] == len(
        next(iter(other.values()))
    )
    _verify_ok(site)

    # a recall keeps the compressed bytes (every door decodes them); the saving follows
    report = site.mover.move_study(study, HOT)
    assert report.complete and report.bytes_written == report.bytes_read
    assert {site.archive.instance(sop).tier for sop in sent} == {HOT}
    assert {site.archive.instance(sop).transfer_syntax for sop in sent} == syntaxes
    tiers = _tiers(site)
    assert tiers[HOT]["saved_bytes"] == original - report.bytes_written
    # and back to cold: already compressed, moved as is, the size as received kept
    assert site.mover.move_study(study, "cold").complete
    assert _tiers(site)["cold"]["original_bytes"] == original
    _same_pixels(site.archive, sent)
    _verify_ok(site)


def test_trash_across_tiers_delete_restore_delete_purge(site: Site) -> None:
    study, sent = _store(site.archive)
    _, kept = _store(site.archive, 1)
    original = sum(len(raw) for raw in sent.values())
    assert site.mover.move_study(study, "cold").complete
    compressed = _tiers(site)["cold"]["bytes"]
    study_id = _public_id(site, "studies", "study_uid", study)
    first = site.archive.delete(Level.STUDY, study_id).deletion_id
    assert _size(site.cold_dir) == compressed  # kept in the trash, on its tier
    _verify_ok(site)  # the trashed blobs are checked, and are no orphans

    # the restore indexes them on the cold tier again, with their size as received
    assert site.archive.trash.restore(first, "test").restored == 3
    assert {site.archive.instance(sop).tier for sop in sent} == {"cold"}
    tiers = _tiers(site)
    assert tiers["cold"]["objects"] == 3 and tiers["cold"]["original_bytes"] == original
    _same_pixels(site.archive, sent)
    assert site.mover.move_study(study, HOT).complete  # a recall works after a restore
    assert site.mover.move_study(study, "cold").complete
    _verify_ok(site)

    second = site.archive.delete(Level.STUDY, study_id).deletion_id
    with site.archive.index.database.reader() as conn:
        tiers_in_trash = conn.execute(
            "SELECT DISTINCT tier FROM deleted_instances WHERE deletion_pk = ?", (second,)
        )
    assert [str(r[0]) for r in tiers_in_trash] == ["cold"]
    result = site.archive.trash.purge(second, expired_only=False)
    assert result.purged == [second] and result.blobs_deleted == 3
    assert _size(site.cold_dir) == 0
    assert len([p for p in site.hot_dir.rglob("*") if p.is_file()]) == len(kept)
    _verify_ok(site)


def test_verify_reports_a_corrupt_or_missing_trashed_blob(site: Site) -> None:
    study, sent = _store(site.archive, 2)
    assert site.mover.move_study(study, "cold").complete
    instance = site.archive.instance(next(iter(sent)))
    path = site.archive.instance_path(instance)
    assert path is not None and path.is_relative_to(site.cold_dir)
    site.archive.delete(Level.IMAGE, _public_id(site, "instances", "sop_uid", instance.sop_uid))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55
    path.write_bytes(bytes(data))
    report = Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0)
    assert [(p.kind, p.sop_uid) for p in report.problems] == [("corrupt", instance.sop_uid)]
    assert "trash" in report.problems[0].detail and not report.ok
    path.unlink()
    report = Verifier(site.archive.index.database, site.blobs).run(orphan_min_age=0)
    assert [(p.kind, p.sop_uid) for p in report.problems] == [("missing", instance.sop_uid)]
