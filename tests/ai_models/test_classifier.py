"""Classifier and OnnxBackend on a tiny ONNX model run by real onnxruntime."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from ai_models.backend import OnnxBackend
from ai_models.card import ModelCard, ModelCardError, load_card
from ai_models.classifier import Classifier
from ai_models.preprocess import UnsupportedImage
from tests.ai_models.test_preprocess import radiograph, reread
from tests.ai_models.tiny import card_json, expected_score, make_model_folder


@pytest.fixture
def card(tmp_path: Path) -> ModelCard:
    return load_card(make_model_folder(tmp_path / "tiny"))


def grey(value: int, shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


def test_score_matches_the_hand_computation(card: ModelCard) -> None:
    classifier = Classifier(card, OnnxBackend(card))
    (low, high) = classifier.predict_images([grey(0), grey(255)])
    assert low.score == pytest.approx(expected_score(-1.0), abs=1e-6)  # x/127.5 - 1 = -1
    assert high.score == pytest.approx(expected_score(1.0), abs=1e-6)
    assert low.probabilities["NORMAL"] == pytest.approx(1 - low.score, abs=1e-6)
    assert low.finding == "ABNORMAL"
    assert (low.flagged, high.flagged) == (False, True)  # threshold 0.8 on the card


def test_batch_of_n_equals_n_singles(card: ModelCard) -> None:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(12 + n, 9 + 2 * n), dtype=np.uint8) for n in range(11)]
    batched = Classifier(card, OnnxBackend(card), batch_size=4).predict_images(images)
    singles = [
        Classifier(card, OnnxBackend(card), batch_size=1).predict_images([i])[0] for i in images
    ]
    padded = Classifier(card, OnnxBackend(card), batch_size=4, fixed_batch=True)
    padded.warm_up()
    assert len(batched) == 11
    for one, other, third in zip(batched, singles, padded.predict_images(images), strict=True):
        assert one.score == pytest.approx(other.score, abs=1e-6)
        assert third.score == pytest.approx(other.score, abs=1e-6)


def test_predict_datasets_uses_the_card_window(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path / "m")
    raw = card_json()
    raw["input"]["dicom_window"] = {"method": "percentile", "low": 0, "high": 100}
    (folder / "model_card.json").write_text(json.dumps(raw), encoding="utf-8")
    card = load_card(folder)
    pixels = np.zeros((16, 16), dtype=np.uint16)
    pixels[:, 4:] = 3000  # a quarter black, the rest white: mean of the scaled input 0.5
    mono2 = radiograph(pixels)
    mono1 = radiograph(pixels, PhotometricInterpretation="MONOCHROME1")
    classifier = Classifier(card, OnnxBackend(card))
    shown_as_is, inverted = classifier.predict_datasets([reread(mono2), reread(mono1)])
    assert shown_as_is.score == pytest.approx(expected_score(0.5), abs=1e-6)
    assert inverted.score == pytest.approx(expected_score(-0.5), abs=1e-6)
    bad = radiograph(pixels)
    del bad.PixelData
    with pytest.raises(UnsupportedImage, match="data set 1: the data set has no pixel data"):
        classifier.predict_datasets([reread(mono1), bad])


def test_nchw_single_channel_sigmoid_model(tmp_path: Path) -> None:
    raw = card_json(
        output={"name": "logits", "classes": ["EFFUSION"], "postprocess": "sigmoid"},
        operating_point={"threshold": 0.5, "source": "test", "model_version": "1.0"},
    )
    raw["input"].update(layout="NCHW", channels=1)
    folder = make_model_folder(tmp_path / "m", raw, layout="NCHW", channels=1, classes=1)
    card = load_card(folder)
    assert card.positive_class == "EFFUSION"
    (prediction,) = Classifier(card, OnnxBackend(card)).predict_images([grey(255)])
    assert prediction.score == pytest.approx(expected_score(1.0), abs=1e-6)
    assert prediction.probabilities == {"EFFUSION": pytest.approx(prediction.score)}


def test_cuda_asked_for_but_absent_falls_back_to_cpu(
    card: ModelCard, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available here: nothing to fall back from")
    with caplog.at_level(logging.WARNING):
        backend = OnnxBackend(card, ["CUDAExecutionProvider", "CPUExecutionProvider"], threads=1)
    assert backend.providers_in_use == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider was asked for but is not available" in caplog.text
    with caplog.at_level(logging.WARNING):
        only_cuda = OnnxBackend(card, ["CUDAExecutionProvider"])
    assert only_cuda.providers_in_use == ["CPUExecutionProvider"]
    assert "using CPUExecutionProvider" in caplog.text


def test_card_that_does_not_match_the_model_is_refused(tmp_path: Path) -> None:
    raw = card_json()
    raw["input"].update(height=16, width=16)
    card = load_card(make_model_folder(tmp_path / "a", raw))
    with pytest.raises(ModelCardError, match="does not match the card"):
        OnnxBackend(card)
    card = load_card(
        make_model_folder(
            tmp_path / "b",
            card_json(
                output={"name": "probs", "classes": ["A", "B"]},
                operating_point={"threshold": 0.5, "source": "t", "model_version": "1.0"},
            ),
        )
    )
    with pytest.raises(ModelCardError, match="no output named 'probs'"):
        OnnxBackend(card)
    folder = make_model_folder(tmp_path / "c")
    (folder / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelCardError, match="cannot load"):
        OnnxBackend(load_card(folder))


def test_postprocess_checks_shape_and_finiteness(card: ModelCard) -> None:
    from ai_models.classifier import postprocess

    assert postprocess(np.array([[0.0, 0.0]]), card).tolist() == [[0.5, 0.5]]
    with pytest.raises(ValueError, match="3 outputs per image"):
        postprocess(np.zeros((1, 3)), card)
    with pytest.raises(ValueError, match="non-finite"):
        postprocess(np.array([[np.nan, 1.0]]), card)
