"""Evaluation maths, labelled folders of PNG/JPEG/DICOM files, and recording into the card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ai_models.backend import OnnxBackend
from ai_models.card import load_card
from ai_models.classifier import Classifier
from ai_models.evaluate import (
    auroc,
    bootstrap_intervals,
    evaluate,
    record_evaluation,
    sensitivity,
    specificity,
)
from tests.ai_models.test_preprocess import radiograph
from tests.ai_models.tiny import make_model_folder
from tests.factories import to_bytes


def test_auroc_hand_computed() -> None:
    # pairs (positive, negative): (0.35, 0.1) yes, (0.35, 0.4) no, (0.8, 0.1) yes, (0.8, 0.4) yes
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auroc(np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1])) == 0.75  # a tie counts half
    assert auroc(np.array([0.2, 0.3]), np.array([1, 1])) is None


def test_sensitivity_and_specificity() -> None:
    flags = np.array([True, False, True, False, False])
    labels = np.array([1, 1, 0, 0, 0])
    assert sensitivity(flags, labels) == 0.5
    assert specificity(flags, labels) == pytest.approx(2 / 3)
    assert specificity(flags[:2], labels[:2]) is None


def test_bootstrap_is_seeded_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=200)
    scores = np.clip(labels * 0.3 + rng.normal(0.4, 0.2, size=200), 0, 1)
    first = bootstrap_intervals(scores, labels, 0.5, 500, seed=3)
    assert first == bootstrap_intervals(scores, labels, 0.5, 500, seed=3)
    assert first != bootstrap_intervals(scores, labels, 0.5, 500, seed=4)
    flags = scores >= 0.5
    for name, value in (
        ("auroc", auroc(scores, labels)),
        ("sensitivity", sensitivity(flags, labels)),
        ("specificity", specificity(flags, labels)),
    ):
        interval = first[name]
        assert interval is not None and value is not None
        assert interval[0] < value < interval[1]


def labelled_folder(root: Path) -> Path:
    """PNG, JPEG and DICOM files; ``label``: dark negative, bright positive; ``truth``: all 1.

    One broken file, one missing, one blank label and one unknown label.
    """
    images = root / "images"
    images.mkdir(parents=True)
    rows = ["file,label,truth"]
    for n, value in enumerate((10, 30, 60, 200, 220, 250)):
        name = f"images/{n}.png" if n % 2 else f"images/{n}.jpg"
        Image.fromarray(np.full((24, 24), value, dtype=np.uint8)).save(root / name)
        rows.append(f"{name},{['0', 'no', 'NORMAL', '1', 'yes', 'ABNORMAL'][n]},1")
    dicom = radiograph(np.full((8, 8), 1000, dtype=np.uint16), WindowCenter=500, WindowWidth=100)
    (images / "white.dcm").write_bytes(to_bytes(dicom))
    rows.append("images/white.dcm,true,1")
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    rows += [
        "images/broken.png,1,1",
        "images/absent.png,0,1",
        "images/0.jpg,,1",
        "images/1.png,maybe,1",
    ]
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "labels.csv"


@pytest.fixture
def classifier(tmp_path: Path) -> Classifier:
    card = load_card(make_model_folder(tmp_path / "model"))
    return Classifier(card, OnnxBackend(card), batch_size=3)


def test_evaluate_a_labelled_folder(tmp_path: Path, classifier: Classifier) -> None:
    labels = labelled_folder(tmp_path / "set")
    report = evaluate(classifier, labels, "label", bootstrap=200, seed=0)
    assert (report.n, report.positives, report.negatives) == (7, 4, 3)
    assert report.auroc == 1.0 and report.dataset == "set"
    assert report.sensitivity == 1.0 and report.specificity == 1.0  # dark < 0.8 <= bright
    assert report.flagged == 4
    reasons = dict(report.failures)
    assert set(reasons) == {
        "images/broken.png",
        "images/absent.png",
        "images/0.jpg",
        "images/1.png",
    }
    assert "not a readable image" in reasons["images/broken.png"]
    assert "No such file" in reasons["images/absent.png"]
    assert "neither positive nor negative" in reasons["images/1.png"]
    assert report.model_version == "1.0" and report.threshold == 0.8
    assert json.loads(json.dumps(report.to_dict()))["n"] == 7
    assert "AUROC        1.000" in report.to_text()


def test_all_positive_set_reports_undefined_figures(tmp_path: Path, classifier: Classifier) -> None:
    labels = labelled_folder(tmp_path / "set")
    report = evaluate(classifier, labels, "truth", bootstrap=100)
    assert report.auroc is None and report.auroc_ci is None
    assert report.specificity is None and report.negatives == 0
    assert (report.n, report.positives, report.sensitivity) == (9, 9, 4 / 9)
    assert any("AUROC and specificity are undefined" in note for note in report.notes)
    with pytest.raises(ValueError, match="no column 'nope'"):
        evaluate(classifier, labels, "nope")


def test_record_appends_to_the_card(tmp_path: Path, classifier: Classifier) -> None:
    report = evaluate(classifier, labelled_folder(tmp_path / "set"), "label", bootstrap=50)
    folder = classifier.card.folder
    record_evaluation(folder, report)
    record_evaluation(folder, report)
    card = load_card(folder)
    assert len(card.evaluations) == 2
    entry = card.evaluations[0]
    assert entry["model_version"] == "1.0" and entry["n"] == 7 and entry["failed_files"] == 4
    assert entry["auroc"] == 1.0 and entry["dataset"] == "set"


def test_record_refuses_a_read_only_folder(tmp_path: Path, classifier: Classifier) -> None:
    report = evaluate(classifier, labelled_folder(tmp_path / "set"), "label", bootstrap=10)
    folder = classifier.card.folder
    before = (folder / "model_card.json").read_bytes()
    os.chmod(folder / "model_card.json", 0o444)
    os.chmod(folder, 0o555)
    try:
        with pytest.raises(PermissionError, match="read-only"):
            record_evaluation(folder, report)
    finally:
        os.chmod(folder, 0o755)
    assert (folder / "model_card.json").read_bytes() == before


def test_load_image_file_modes(tmp_path: Path) -> None:
    from ai_models.evaluate import load_image_file

    wide = np.full((4, 5), 65535, dtype=np.uint16)
    wide[0, 0] = 0
    Image.fromarray(wide).save(tmp_path / "wide.png")
    kind, image = load_image_file(tmp_path / "wide.png")
    assert kind == "image" and image.dtype == np.uint8 and image.shape == (4, 5)
    assert (image[0, 0], image[1, 1]) == (0, 255)
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    assert load_image_file(tmp_path / "rgba.png")[1].shape == (4, 5, 3)
    Image.fromarray(np.eye(4, dtype=np.uint8) * 255).convert("P").save(tmp_path / "p.png")
    assert load_image_file(tmp_path / "p.png")[1].shape == (4, 4, 3)
    dicom = radiograph(np.full((8, 8), 1000, dtype=np.uint16))
    (tmp_path / "no-suffix").write_bytes(to_bytes(dicom))
    assert load_image_file(tmp_path / "no-suffix")[0] == "dicom"
