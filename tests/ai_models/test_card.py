"""Model cards: our format, the shared card as it is, and every refusal with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ai_models.card import RESEARCH_ONLY, ModelCardError, file_sha256, load_card
from tests.ai_models.tiny import card_json, make_model_folder


def write_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")


def test_full_card_loads(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path / "tiny")
    card = load_card(folder)
    assert (card.name, card.version, card.classes) == ("tiny", "1.0", ("NORMAL", "ABNORMAL"))
    assert card.positive_class == "ABNORMAL" and card.postprocess == "softmax"
    assert (card.threshold, card.threshold_source) == (0.8, "test")
    assert card.sha256 == file_sha256(folder / "model.onnx")
    assert card.input.height == card.input.width == 8 and card.input.layout == "NHWC"
    assert card.input.scaling.divisor == 127.5 and card.input.dicom_window.method == "image"
    assert card.routing is not None and card.routing.modalities == ("CR", "DX")
    assert card.use_label == RESEARCH_ONLY and card.derived == ()


def test_minimal_card_derives_name_version_threshold(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path / "chest-model")
    card = card_json()
    for key in ("name", "version", "operating_point", "intended_use", "clinical_use", "file"):
        del card[key]
    write_card(folder, card)
    loaded = load_card(folder)
    assert loaded.name == "chest-model"
    assert loaded.version == f"sha256:{file_sha256(folder / 'model.onnx')[:12]}"
    assert (loaded.threshold, loaded.threshold_source) == (0.5, "default, not validated")
    assert loaded.clinical_use is False and RESEARCH_ONLY in loaded.intended_use
    assert any("threshold 0.5" in d for d in loaded.derived)


def test_shared_card_loads_as_it_is(shared_data: Path) -> None:
    card = load_card(shared_data / "cxr-model")
    assert card.name == "cxr-model"
    assert card.version == "sha256:ad21e1a4b239"
    assert card.classes == ("NORMAL", "PNEUMONIA") and card.positive_class == "PNEUMONIA"
    assert (card.output_name, card.postprocess) == ("logits", "softmax")
    assert (card.threshold, card.threshold_source) == (0.5, "default, not validated")
    assert card.clinical_use is False and card.use_label == RESEARCH_ONLY
    contract = card.input
    assert (contract.height, contract.width, contract.channels) == (150, 150, 3)
    assert (contract.layout, contract.resize, contract.input_name) == ("NHWC", "nearest", "input")
    assert (contract.scaling.divisor, contract.scaling.mean) == (127.5, (1.0,))
    assert contract.dicom_window.method == "percentile"
    assert "none stated" in card.licence
    assert "observed_performance (reference_outputs.csv)" in card.performance


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": {"height": 8}}, "input.width"),
        ({"input": {**card_json()["input"], "layout": "HWC"}}, "layout"),
        ({"input": {**card_json()["input"], "resize": "magic"}}, "resize"),
        ({"input": {**card_json()["input"], "scaling": "divide by two"}}, "scaling"),
        ({"output": {"name": "logits", "classes": []}}, "classes"),
        ({"output": {**card_json()["output"], "postprocess": "argmax"}}, "postprocess"),
        ({"output": {**card_json()["output"], "positive_class": "CAT"}}, "positive_class"),
        ({"operating_point": {"threshold": 0.3, "source": "x"}}, "model_version"),
        (
            {"operating_point": {"threshold": 0.3, "source": "ROC", "model_version": "0.9"}},
            "never carried over",
        ),
        ({"operating_point": {"threshold": 2, "source": "x", "model_version": "1.0"}}, "[0, 1]"),
        ({"clinical_use": "yes"}, "clinical_use"),
        ({"sha256": "0" * 64}, "other weights"),
        ({"file": "../elsewhere.onnx"}, "inside the model folder"),
        ({"file": "absent.onnx"}, "missing"),
        ({"routing": {"description_patterns": ["("]}}, "description_patterns"),
    ],
)
def test_invalid_cards_are_refused_with_the_reason(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    folder = make_model_folder(tmp_path / "m")
    write_card(folder, card_json(**change))
    with pytest.raises(ModelCardError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_card(folder)


def test_missing_or_broken_card_file(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path / "m")
    (folder / "model_card.json").unlink()
    with pytest.raises(ModelCardError, match=r"no model_card\.json"):
        load_card(folder)
    (folder / "model_card.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelCardError, match="not readable JSON"):
        load_card(folder)
    (folder / "model_card.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ModelCardError, match="JSON object"):
        load_card(folder)


def test_evaluations_of_other_versions_are_not_shown(tmp_path: Path) -> None:
    folder = make_model_folder(tmp_path / "m")
    mine = {"model_version": "1.0", "dataset": "a", "auroc": 0.7}
    other = {"model_version": "0.9", "dataset": "a", "auroc": 0.9}
    write_card(folder, card_json(evaluations=[mine, other]))
    assert load_card(folder).evaluations == (mine,)
