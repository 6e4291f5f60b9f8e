"""Occlusion heat map: the patch whose masking drops the score most is the hottest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ai_models.backend import OnnxBackend
from ai_models.card import load_card
from ai_models.classifier import Classifier
from ai_models.explain import heatmap_overlay, occlusion_heatmap
from tests.ai_models.tiny import make_model_folder


@pytest.fixture
def classifier(tmp_path: Path) -> Classifier:
    card = load_card(make_model_folder(tmp_path / "tiny"))
    return Classifier(card, OnnxBackend(card), batch_size=8)


def test_the_bright_patch_is_the_hot_one(classifier: Classifier) -> None:
    image = np.zeros((60, 60), dtype=np.uint8)
    image[20:30, 40:50] = 255  # one grid cell of six by six
    heat = occlusion_heatmap(classifier, image, grid=6)
    assert heat.shape == (60, 60) and heat.dtype == np.float32
    assert heat[20:30, 40:50].min() == pytest.approx(1.0)
    outside = heat.copy()
    outside[20:30, 40:50] = 0
    assert outside.max() == 0.0  # masking black with mean grey only raises this model's score
    raw = occlusion_heatmap(classifier, image, grid=6, normalise=False)
    base = classifier.predict_images([image])[0].score
    masked = image.copy()
    masked[20:30, 40:50] = round(float(image.mean()))
    drop = base - classifier.predict_images([masked])[0].score
    assert raw[25, 45] == pytest.approx(drop, abs=1e-6) and 0 < drop < 1


def test_uniform_image_gives_zeros(classifier: Classifier) -> None:
    heat = occlusion_heatmap(classifier, np.full((13, 17), 90, dtype=np.uint8), grid=4)
    assert heat.shape == (13, 17) and not heat.any()


def test_overlay_is_rgb_and_red_where_hot() -> None:
    image = np.full((10, 10), 100, dtype=np.uint8)
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[:5] = 1.0
    overlay = heatmap_overlay(image, heat)
    assert overlay.shape == (10, 10, 3) and overlay.dtype == np.uint8
    assert overlay[9, 9].tolist() == [100, 100, 100]
    red, _, blue = overlay[0, 0].tolist()
    assert red > 100 and blue < 100
    with pytest.raises(ValueError, match="does not match"):
        heatmap_overlay(image, heat[:5])
