"""The AI job queue on SQLite and PostgreSQL: queued in the instance's transaction, debounced,
claimed under a lease, retried with back-off, and never closed by a run of an older state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_models.worker import AiWorker
from pacs.core.ai_jobs import AiQueuePolicy
from pacs.core.ai_results import AiResult
from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.ids import public_id
from pacs.core.model import Level
from storage import FileSystemBlobStore
from tests.factories import make_image, make_radiograph, new_uid, to_bytes


@pytest.fixture
def queued(index_url: str, tmp_path: Path) -> Iterator[Archive]:
    """An archive queueing CR and DX series for the AI, due at once."""
    archive = Archive.open(
        index_url,
        FileSystemBlobStore(tmp_path / "blobs"),
        ai_policy=AiQueuePolicy(delay=0.0, modalities=frozenset({"CR", "DX"})),
    )
    try:
        yield archive
    finally:
        archive.close()


def test_only_routed_modalities_are_queued_and_ai_output_never(queued: Archive) -> None:
    study = new_uid()
    queued.store(to_bytes(make_radiograph(study_uid=study)), "modality")
    queued.store(to_bytes(make_image(study_uid=study)), "modality")  # CT: not routed
    queued.store(to_bytes(make_radiograph(study_uid=study)), "ai:tiny")  # the AI's own output
    assert queued.ai_queue.counts() == {"pending": 1}


def test_claim_lease_and_finish(queued: Archive) -> None:
    ds = make_radiograph()
    queued.store(to_bytes(ds), "modality")
    (job,) = queued.ai_queue.claim("w1", 10, lease_seconds=60)
    assert job.series_uid == ds.SeriesInstanceUID and job.attempts == 1
    assert queued.ai_queue.claim("w2", 10, lease_seconds=60) == []  # leased to w1
    assert queued.ai_queue.finish(job)
    assert queued.ai_queue.counts() == {"done": 1}
    assert queued.ai_queue.claim("w2", 10, lease_seconds=60) == []


def test_expired_lease_is_claimed_again(queued: Archive) -> None:
    """A worker killed mid-job: its lease runs out and another worker takes the series."""
    queued.store(to_bytes(make_radiograph()), "modality")
    (first,) = queued.ai_queue.claim("dead-worker", 10, lease_seconds=0.2)
    time.sleep(0.3)
    (again,) = queued.ai_queue.claim("w2", 10, lease_seconds=60)
    assert again.pk == first.pk and again.attempts == 2
    assert not queued.ai_queue.finish(first)  # the lease is w2's now
    assert queued.ai_queue.finish(again)
    assert queued.ai_queue.counts() == {"done": 1}


def test_new_instance_requeues_and_outdates_a_running_job(queued: Archive) -> None:
    study, series = new_uid(), new_uid()
    queued.store(to_bytes(make_radiograph(study_uid=study, series_uid=series)), "modality")
    (job,) = queued.ai_queue.claim("w1", 10, lease_seconds=60)
    queued.store(
        to_bytes(make_radiograph(study_uid=study, series_uid=series, instance_number=2)),
        "modality",
    )
    assert not queued.ai_queue.finish(job)  # the series changed while it was read
    (newer,) = queued.ai_queue.claim("w1", 10, lease_seconds=60)
    assert newer.generation == job.generation + 1
    assert queued.ai_queue.finish(newer)


def test_debounce_pushes_the_due_time(index_url: str, tmp_path: Path) -> None:
    archive = Archive.open(
        index_url, FileSystemBlobStore(tmp_path / "b"), ai_policy=AiQueuePolicy(delay=30.0)
    )
    try:
        archive.store(to_bytes(make_radiograph()), "modality")
        assert archive.ai_queue.claim("w", 10, 60) == []  # not stable yet
        assert archive.ai_queue.counts() == {"pending": 1}
    finally:
        archive.close()


def test_retry_backs_off_then_fails(queued: Archive) -> None:
    queued.store(to_bytes(make_radiograph()), "modality")
    (job,) = queued.ai_queue.claim("w", 10, 60)
    assert queued.ai_queue.retry(job, "boom", max_attempts=2, backoff=0.2) == "pending"
    assert queued.ai_queue.claim("w", 10, 60) == []  # backing off
    time.sleep(0.3)
    (job,) = queued.ai_queue.claim("w", 10, 60)
    assert queued.ai_queue.retry(job, "boom again", max_attempts=2) == "failed"
    (listed,) = queued.ai_queue.jobs("failed")
    assert listed["last_error"] == "boom again" and listed["attempts"] == 2


def test_results_worklist_and_feedback(queued: Archive) -> None:
    studies = [new_uid() for _ in range(3)]
    for study in studies:
        queued.store(to_bytes(make_radiograph(study_uid=study)), "modality")

    def result(study: str, score: float, version: str = "1") -> AiResult:
        return AiResult(
            study_uid=study,
            series_uid=f"{study}.9",
            model_name="m",
            model_version=version,
            finding="PNEUMONIA",
            score=score,
            threshold=0.5,
            flagged=score >= 0.5,
            clinical_use=False,
            sr_sop_uid=new_uid(),
        )

    low = queued.ai_results.record(result(studies[0], 0.2))
    high = queued.ai_results.record(result(studies[1], 0.9))
    assert queued.ai_results.record(result(studies[1], 0.95)) == high  # same series and version
    queued.ai_results.record(result(studies[1], 0.7, version="2"))
    order = [entry["study_uid"] for entry in queued.ai_results.worklist()]
    assert order == [studies[1], studies[0], studies[2]]
    top = queued.ai_results.worklist()[0]["ai"]
    assert top["score"] == 0.95 and top["model"]["version"] == "1"
    assert [e["study_uid"] for e in queued.ai_results.worklist(flagged_only=True)] == [studies[1]]
    assert queued.ai_results.get(low)["flagged"] is False

    queued.ai_results.add_feedback(high, "confirmed", "dr.a")
    queued.ai_results.add_feedback(high, "rejected", "dr.b", "second opinion")
    assert queued.ai_results.get(high)["feedback"] == "rejected"
    assert [f["reader"] for f in queued.ai_results.feedback(high)] == ["dr.a", "dr.b"]
    with pytest.raises(InvalidQuery):
        queued.ai_results.add_feedback(high, "perhaps", "dr.c")
    with pytest.raises(NotFound):
        queued.ai_results.add_feedback(10**9, "confirmed", "dr.c")


def test_deleting_a_study_forgets_its_ai_jobs_and_results(queued: Archive) -> None:
    ds = make_radiograph()
    queued.store(to_bytes(ds), "modality")
    result = AiResult(
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        model_name="m",
        model_version="1",
        finding="PNEUMONIA",
        score=0.9,
        threshold=0.5,
        flagged=True,
        clinical_use=False,
        sr_sop_uid=new_uid(),
    )
    result_id = queued.ai_results.record(result)
    queued.ai_results.add_feedback(result_id, "confirmed", "dr.a")
    queued.delete(Level.STUDY, public_id(str(ds.PatientID), str(ds.StudyInstanceUID)))
    assert queued.ai_results.for_study(str(ds.StudyInstanceUID)) == []
    assert queued.ai_queue.counts() == {}
    assert queued.ai_results.worklist() == []


def test_worker_sees_ingest_by_others_not_its_own_writes(queued: Archive) -> None:
    worker = AiWorker(queued, [], [], yield_to_ingest=3.0)
    assert not worker._ingest_active()  # nothing stored yet
    queued.store(to_bytes(make_radiograph()), "modality")
    assert worker._ingest_active()
    worker._own_write_at = time.time()  # as after the worker stored its own SR
    assert not worker._ingest_active()
