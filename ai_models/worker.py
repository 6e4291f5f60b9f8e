"""The AI worker: claims due series, reads their images, runs the models, stores the results
back into the archive (SR, heat map) and records the flag. The only ``ai_models`` module that
imports ``pacs.core``: results enter the archive through ``Archive.store`` like any
modality's images.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from ai_models.classifier import Classifier, Prediction
from ai_models.preprocess import UnsupportedImage
from ai_models.results_dicom import SeriesFinding, build_heatmap, build_report
from ai_models.routing import Route
from pacs.core.ai_jobs import AI_ORIGIN_PREFIX, AiJob
from pacs.core.ai_results import AiResult
from pacs.core.archive import Archive
from pacs.core.charsets import read_text_as
from pacs.core.dicom_header import parse_stored_header
from pacs.core.model import StoredInstance

log = logging.getLogger("pacs.ai")

HeatmapMaker = Callable[[Classifier, Dataset], np.ndarray]
"""Makes the RGB overlay shown for a flagged image."""


@dataclass
class _Image:
    """One image of a claimed series, on its way through a model."""

    job: AiJob
    stored: StoredInstance
    header: Dataset
    model_input: np.ndarray | None = None
    prediction: Prediction | None = None
    skipped: str = ""


@dataclass
class _Plan:
    """What to do for one claimed series: each model and the images it reads."""

    job: AiJob
    images: dict[str, list[_Image]] = field(default_factory=dict)  # model name -> images


class AiWorker:
    """Pulls jobs from the archive's AI queue until stopped."""

    def __init__(
        self,
        archive: Archive,
        classifiers: Sequence[Classifier],
        routes: Sequence[Route],
        *,
        jobs_per_claim: int = 8,
        lease_seconds: float = 300.0,
        max_attempts: int = 5,
        heatmap: HeatmapMaker | None = None,
        name: str = "",
        yield_to_ingest: float = 0.0,
    ) -> None:
        self.archive = archive
        self.classifiers = {c.card.name: c for c in classifiers}
        self.routes = [r for r in routes if r.model in self.classifiers]
        self.jobs_per_claim = jobs_per_claim
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.heatmap = heatmap
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.yield_to_ingest = yield_to_ingest
        self._own_write_at = 0.0

    def run(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Work until ``stop`` is set; sleeps only while nothing is due."""
        log.info(
            "AI worker %s: models %s", self.name, ", ".join(sorted(self.classifiers)) or "none"
        )
        while not stop.is_set():
            started = time.monotonic()
            try:
                handled = self.run_once()
            except Exception:  # the queue itself failed (index down): wait and retry
                log.exception("AI worker %s: cannot read the queue", self.name)
                handled = 0
            if not handled:
                stop.wait(poll_seconds)
            elif self.yield_to_ingest and self._ingest_active():
                # Ingest has priority: while others store, rest this many times the work time.
                stop.wait(self.yield_to_ingest * (time.monotonic() - started))

    def _ingest_active(self, window: float = 2.0) -> bool:
        """Whether something other than this worker stored lately."""
        last = self.archive.last_change_time()
        return last > self._own_write_at + 0.05 and last > time.time() - window

    def run_once(self) -> int:
        """Claim due series and process them; returns how many were claimed."""
        jobs = self.archive.ai_queue.claim(self.name, self.jobs_per_claim, self.lease_seconds)
        if not jobs:
            return 0
        plans: list[_Plan] = []
        for job in jobs:
            try:
                plan = self._plan(job)
            except Exception as exc:
                self._failed(job, exc)
                continue
            if plan.images:
                plans.append(plan)
            else:
                self.archive.ai_queue.finish(job, "skipped", "no model routes this series")
        for name, classifier in self.classifiers.items():
            self._predict(
                classifier, [image for plan in plans for image in plan.images.get(name, [])]
            )
        for plan in plans:
            try:
                notes = self._conclude(plan)
            except Exception as exc:
                self._failed(plan.job, exc)
                continue
            self.archive.ai_queue.finish(plan.job, "done", "; ".join(notes))
        return len(jobs)

    def _failed(self, job: AiJob, exc: Exception) -> None:
        state = self.archive.ai_queue.retry(job, f"{type(exc).__name__}: {exc}", self.max_attempts)
        log.warning(
            "AI job for series %s failed (attempt %d, now %s): %s",
            job.series_uid,
            job.attempts,
            state,
            exc,
            exc_info=state == "failed",
        )

    def _plan(self, job: AiJob) -> _Plan:
        """Route the series: which models read which of its images."""
        plan = _Plan(job)
        instances = self.archive.series_instances(job.series_uid)
        if not instances:
            return plan
        headers = self.archive.instance_headers(instances)
        charset = self.archive.text_charset()  # for the names copied into the results
        parsed = [
            (stored, parse_stored_header(headers[stored.sop_uid], charset)) for stored in instances
        ]
        series_attributes = _attributes(parsed[0][1])
        for route in self.routes:
            if route.model in plan.images or not route.matches_series(series_attributes):
                continue
            images = [
                _Image(job, stored, header)
                for stored, header in parsed
                if route.accepts_image(_attributes(header)) and "Rows" in header
            ]
            if images:
                plan.images[route.model] = images
        return plan

    def _predict(self, classifier: Classifier, images: list[_Image]) -> None:
        """Read and preprocess every image, then run the model on all of them in batches."""
        ready: list[_Image] = []
        for image in images:
            try:
                dataset = dcmread(BytesIO(self.archive.read_instance(image.stored)), force=True)
                image.model_input = classifier.prepare_dataset(dataset)
                ready.append(image)
            except UnsupportedImage as exc:
                image.skipped = str(exc)
            except Exception as exc:  # an unreadable file must not stop the other images
                image.skipped = f"{type(exc).__name__}: {exc}"
        if not ready:
            return
        inputs = [image.model_input for image in ready if image.model_input is not None]
        for image, prediction in zip(ready, classifier.predict_inputs(inputs), strict=True):
            image.prediction = prediction
            image.model_input = None

    def _conclude(self, plan: _Plan) -> list[str]:
        """Store each model's SR (and heat map) and record its result."""
        notes = []
        for name, images in plan.images.items():
            classifier = self.classifiers[name]
            scored = [image for image in images if image.prediction is not None]
            skipped = {image.stored.sop_uid: image.skipped for image in images if image.skipped}
            if not scored:
                notes.append(f"{name}: no readable image ({'; '.join(skipped.values())[:200]})")
                continue
            notes.append(self._record(classifier, plan.job, scored, skipped))
        return notes

    def _record(
        self, classifier: Classifier, job: AiJob, scored: list[_Image], skipped: dict[str, str]
    ) -> str:
        card = classifier.card
        best = max(scored, key=lambda image: image.prediction.score if image.prediction else 0.0)
        assert best.prediction is not None
        finding = SeriesFinding(
            card=card,
            score=best.prediction.score,
            flagged=best.prediction.flagged,
            image_scores={
                image.stored.sop_uid: image.prediction.score
                for image in scored
                if image.prediction is not None
            },
        )
        origin = f"{AI_ORIGIN_PREFIX}{card.name}"
        sr_uid, sr_bytes = build_report(finding, [image.header for image in scored], job.generation)
        self.archive.store(sr_bytes, origin)
        self._own_write_at = time.time()
        heatmap_uid = ""
        if self.heatmap is not None and finding.flagged:
            heatmap_uid = self._store_heatmap(classifier, best, job, origin)
        self.archive.ai_results.record(
            AiResult(
                study_uid=job.study_uid,
                series_uid=job.series_uid,
                model_name=card.name,
                model_version=card.version,
                finding=finding.card.positive_class,
                score=finding.score,
                threshold=card.threshold,
                flagged=finding.flagged,
                clinical_use=card.clinical_use,
                sr_sop_uid=sr_uid,
                heatmap_sop_uid=heatmap_uid,
                details={
                    "image_scores": finding.image_scores,
                    "skipped": skipped,
                    "threshold_source": card.threshold_source,
                    "use": card.use_label,
                    "generation": job.generation,
                },
            )
        )
        log.info(
            "AI %s %s: series %s score %.3f (%s)",
            card.name,
            card.version,
            job.series_uid,
            finding.score,
            "FLAGGED" if finding.flagged else "not flagged",
        )
        return f"{card.name}: {finding.score:.3f}"

    def _store_heatmap(self, classifier: Classifier, image: _Image, job: AiJob, origin: str) -> str:
        """The heat map of the highest-scoring image; a failure here loses only the map."""
        assert self.heatmap is not None
        try:
            dataset = read_text_as(
                dcmread(BytesIO(self.archive.read_instance(image.stored)), force=True),
                self.archive.text_charset(),
            )
            overlay = self.heatmap(classifier, dataset)
            uid, raw = build_heatmap(classifier.card, dataset, overlay, job.generation)
            self.archive.store(raw, origin)
            self._own_write_at = time.time()
            return uid
        except Exception:
            log.exception("AI heat map for %s failed", image.stored.sop_uid)
            return ""


def _attributes(ds: Dataset) -> dict[str, str]:
    """The header values routing looks at, as text."""
    values = {}
    for keyword in (
        "Modality",
        "BodyPartExamined",
        "SeriesDescription",
        "StudyDescription",
        "ProtocolName",
        "ViewPosition",
    ):
        try:
            values[keyword] = str(ds.get(keyword, "") or "")
        except Exception:  # a malformed value routes as absent
            values[keyword] = ""
    return values
