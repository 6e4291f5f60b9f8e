"""Occlusion saliency: how much the positive score drops when each patch is masked."""

from __future__ import annotations

import itertools

import numpy as np

from ai_models.classifier import Classifier
from ai_models.preprocess import as_8bit_image


def _edges(length: int, grid: int) -> list[tuple[int, int]]:
    cuts = np.linspace(0, length, grid + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(cuts)]


def occlusion_heatmap(
    classifier: Classifier, image: np.ndarray, grid: int = 6, *, normalise: bool = True
) -> np.ndarray:
    """float32 map in [0, 1] at the image's size; 1 where masking hurts the score most.

    Each of ``grid`` x ``grid`` patches is filled with the image's mean grey in turn; all
    the masked copies run through the classifier in batches. No drop anywhere gives zeros.
    ``normalise=False`` gives the raw score drops instead (to decide whether the map is
    worth showing: a low-scoring image's small drops are stretched to 1 when normalised).
    """
    if grid < 1:
        raise ValueError("grid must be at least 1")
    array = as_8bit_image(image)
    height, width = array.shape[:2]
    fill = np.round(array.mean(axis=(0, 1))).astype(np.uint8)
    rows, cols = _edges(height, grid), _edges(width, grid)
    masked = []
    for top, bottom in rows:
        for left, right in cols:
            copy = array.copy()
            copy[top:bottom, left:right] = fill
            masked.append(classifier.prepare_image(copy))
    base = classifier.predict_inputs([classifier.prepare_image(array)])[0].score
    scores = [p.score for p in classifier.predict_inputs(masked)]
    drops = np.clip(base - np.asarray(scores, dtype=np.float64), 0.0, None).reshape(grid, grid)
    peak = float(drops.max())
    if normalise and peak > 0:
        drops = drops / peak
    heat = np.zeros((height, width), dtype=np.float32)
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            heat[top:bottom, left:right] = drops[i, j]
    return heat


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """uint8 (H, W, 3): the image in grey with the heat map blended in red to yellow."""
    array = as_8bit_image(image)
    if array.shape[:2] != heat.shape:
        raise ValueError(f"heat map {heat.shape} does not match the image {array.shape[:2]}")
    grey = array.astype(np.float32) if array.ndim == 3 else np.repeat(array[..., None], 3, axis=2)
    grey = grey.astype(np.float32)
    level = np.clip(heat.astype(np.float32), 0.0, 1.0)[..., None]
    colour = np.concatenate(
        [np.full_like(level, 255.0), 255.0 * level, np.zeros_like(level)], axis=2
    )
    alpha = opacity * level
    blended = grey * (1.0 - alpha) + colour * alpha
    result: np.ndarray = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return result
