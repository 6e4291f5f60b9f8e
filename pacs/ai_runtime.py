"""Wiring of the AI pipeline from Settings: routes, the ingest queue policy, and the worker
process (models loaded once per process, niced so that ingest keeps priority)."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ai_models.backend import OnnxBackend
from ai_models.card import ModelCard
from ai_models.classifier import Classifier
from ai_models.explain import heatmap_overlay, occlusion_heatmap
from ai_models.preprocess import display_image
from ai_models.registry import ModelRegistry
from ai_models.routing import Route, queued_modalities, routes_for
from ai_models.worker import AiWorker, HeatmapMaker
from pacs.core.ai_jobs import AiQueuePolicy
from pacs.core.archive import Archive
from pacs.settings import Settings

log = logging.getLogger("pacs.ai")
logging.getLogger("highdicom").setLevel(logging.WARNING)  # one INFO line per copied module

_PROVIDERS = {
    "auto": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "cpu": ("CPUExecutionProvider",),
}


@functools.lru_cache(maxsize=4)
def _registry(models_dir: Path) -> ModelRegistry:
    """The models folder scanned once per process: a scan hashes every ONNX file (85 MB for
    the chest model), and models are loaded at start-up anyway (add one, then restart)."""
    return ModelRegistry.scan(models_dir)


def model_cards(settings: Settings) -> list[ModelCard]:
    """The valid models in the models folder (invalid ones are logged and skipped)."""
    if not settings.models_dir.is_dir():
        log.warning("AI enabled but the models folder %s does not exist", settings.models_dir)
        return []
    return _registry(settings.models_dir).cards


def model_summaries(settings: Settings) -> list[dict[str, object]]:
    """Every model folder: its card's summary, or why it was refused."""
    if not settings.models_dir.is_dir():
        return []
    registry = _registry(settings.models_dir)
    listed: list[dict[str, object]] = [
        {**card.summary(), "folder": card.folder.name, "enabled": settings.ai.enabled}
        for card in registry.cards
    ]
    listed.extend({"folder": folder.name, "error": reason} for folder, reason in registry.errors)
    return listed


def configured_routes(settings: Settings, cards: Sequence[ModelCard]) -> list[Route]:
    """Routes from ``[[ai.routes]]``, completed by each card's own (or the default)."""
    configured = [
        Route(
            model=r.model,
            modalities=r.modalities,
            body_parts=r.body_parts,
            descriptions=r.descriptions,
            view_positions=r.view_positions,
        )
        for r in settings.ai_routes
    ]
    names = {card.name for card in cards}
    for route in configured:
        if route.model not in names:
            log.warning("[[ai.routes]] names model %r, which is not installed", route.model)
    return routes_for(cards, configured)


def queue_policy(settings: Settings) -> AiQueuePolicy | None:
    """What ingest queues for the AI: None when the AI is off or has no model."""
    if not settings.ai.enabled:
        return None
    cards = model_cards(settings)
    if not cards:
        return None
    routes = configured_routes(settings, cards)
    return AiQueuePolicy(delay=settings.ai.stable_seconds, modalities=queued_modalities(routes))


def _heatmap_maker() -> HeatmapMaker:
    def make(classifier: Classifier, dataset: Dataset) -> np.ndarray:
        image = display_image(dataset)
        return heatmap_overlay(image, occlusion_heatmap(classifier, image))

    return make


def build_worker(settings: Settings, archive: Archive) -> AiWorker:
    """An AI worker over ``archive`` with every installed model loaded."""
    cards = model_cards(settings)
    providers = _PROVIDERS[settings.ai.provider]
    classifiers = []
    for card in cards:
        backend = OnnxBackend(card, providers=providers, threads=settings.ai.threads)
        classifier = Classifier(
            card,
            backend,
            batch_size=settings.ai.batch_size,
            fixed_batch="CUDAExecutionProvider" in backend.providers_in_use,
        )
        classifier.warm_up()
        classifiers.append(classifier)
    return AiWorker(
        archive,
        classifiers,
        configured_routes(settings, cards),
        jobs_per_claim=settings.ai.jobs_per_claim,
        lease_seconds=settings.ai.lease_seconds,
        max_attempts=settings.ai.max_attempts,
        heatmap=_heatmap_maker() if settings.ai.heatmaps else None,
        yield_to_ingest=settings.ai.yield_to_ingest,
    )


def run_worker(settings: Settings, archive: Archive, stop: threading.Event) -> None:
    """Run one AI worker in this process until ``stop`` is set."""
    if settings.ai.nice:
        try:
            os.nice(settings.ai.nice)
        except OSError:
            log.warning("cannot lower the AI worker's priority")
    worker = build_worker(settings, archive)
    worker.run(stop, settings.ai.poll_seconds)
