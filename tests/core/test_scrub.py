"""The background scrub: finds corrupt and missing objects, resumes where it stopped, and
closes a problem once the object is sound again."""

from __future__ import annotations

from pacs.core.archive import Archive
from pacs.core.scrub import Scrubber
from tests.core.test_verify import flip_byte
from tests.factories import make_series, to_bytes


def test_scrub_records_problems_and_resumes(archive: Archive) -> None:
    datasets = make_series(5)
    for ds in datasets:
        archive.store(to_bytes(ds), "TEST")
    sops = [str(ds.SOPInstanceUID) for ds in datasets]
    corrupt, missing = archive.instance(sops[1]), archive.instance(sops[3])
    corrupt_path = archive.instance_path(corrupt)
    assert corrupt_path is not None
    original = corrupt_path.read_bytes()
    flip_byte(corrupt_path)
    archive.blobs.delete(missing.blob_key)
    database = archive.index.database

    first = Scrubber(database, archive.blobs, rate_bytes=100e6, batch=2)
    assert first.step() == 2  # instances 1 and 2
    state = first.ledger.state()
    assert state["checked"] == 2 and state["position"] > 0
    # A new scrubber (a restarted server) carries on from the stored position.
    second = Scrubber(database, archive.blobs, rate_bytes=100e6, batch=2)
    assert second.step() == 2
    assert second.step() == 1
    assert second.step() == 0  # the end: pass complete, back to the start
    status = second.status()
    assert status["scrub"]["passes_completed"] == 1 and status["scrub"]["position"] == 0
    by_sop = {p["sop_uid"]: p for p in status["problems"]}
    assert set(by_sop) == {sops[1], sops[3]} and status["open_problems"] == 2
    assert by_sop[sops[1]]["kind"] == "corrupt"
    assert by_sop[sops[1]]["found_sha256"] != corrupt.sha256
    assert by_sop[sops[3]]["kind"] == "missing"
    assert by_sop[sops[3]]["blob_key"] == missing.blob_key

    # Put the corrupt file right: the next pass closes its problem, the missing one stays open.
    corrupt_path.write_bytes(original)
    second.run_pass()
    states = {p["sop_uid"]: p["state"] for p in second.status()["problems"]}
    assert states == {sops[1]: "resolved", sops[3]: "open"}
