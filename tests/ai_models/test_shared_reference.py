"""The real model on the shared samples reproduces every reference score within 0.01."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from ai_models.backend import OnnxBackend
from ai_models.card import load_card
from ai_models.classifier import Classifier
from ai_models.evaluate import load_image_file
from ai_models.preprocess import UnsupportedImage, display_image

pytestmark = pytest.mark.shared_data
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def real_classifier(request: pytest.FixtureRequest) -> Classifier:
    shared = request.getfixturevalue("shared_data")
    card = load_card(shared / "cxr-model")
    return Classifier(card, OnnxBackend(card), batch_size=16)


def test_dicom_reference_scores(shared_data: Path, real_classifier: Classifier) -> None:
    reference = shared_data / "cxr-model" / "reference_outputs_dicom.csv"
    rows = list(csv.DictReader(reference.open(encoding="utf-8")))
    assert len(rows) == 7
    datasets = [dcmread(shared_data / "dicom-samples" / row["file"]) for row in rows]
    predictions = real_classifier.predict_datasets(datasets)
    misses = [
        (row["file"], float(row["p_pneumonia"]), p.score)
        for row, p in zip(rows, predictions, strict=True)
        if abs(p.score - float(row["p_pneumonia"])) > TOLERANCE
    ]
    assert misses == []
    scores = {
        row["file"].rsplit("/", 1)[-1]: p.score for row, p in zip(rows, predictions, strict=True)
    }
    codecs = [scores["RG1_UNCR.dcm"], scores["RG1_J2KI.dcm"], scores["RG1_JLSN.dcm"]]
    assert max(codecs) - min(codecs) < 0.02  # one radiograph, three encodings
    assert scores["Fake_MONOHR1.dcm"] > 0.99  # the photometric trap, inverted as tagged


def test_png_and_jpeg_reference_scores(shared_data: Path, real_classifier: Classifier) -> None:
    images = shared_data / "cxr-images"
    reference = shared_data / "cxr-model" / "reference_outputs.csv"
    rows = [
        row
        for row in csv.DictReader(reference.open(encoding="utf-8"))
        if (images / row["dataset"] / row["file"]).is_file()
    ]
    assert len(rows) >= 138  # the reference covers 438 images; 138 of them are shared here
    inputs = []
    for row in rows:
        kind, image = load_image_file(images / row["dataset"] / row["file"])
        assert kind == "image"
        inputs.append(real_classifier.prepare_image(image))
    predictions = real_classifier.predict_inputs(inputs)
    misses = [
        (row["file"], float(row["p_pneumonia"]), p.score)
        for row, p in zip(rows, predictions, strict=True)
        if abs(p.score - float(row["p_pneumonia"])) > TOLERANCE
    ]
    assert misses == []


def test_every_shared_dicom_sample_gives_an_image_or_unsupported(shared_data: Path) -> None:
    """No sample, hostile ones included, raises anything but ``UnsupportedImage``."""
    shown = refused = 0
    unexpected = []
    for path in sorted((shared_data / "dicom-samples").rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".csv", ".txt"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = dcmread(path, force=True)
            except Exception:  # not a readable file: the archive refuses it before us
                continue
            try:
                image = display_image(ds)
            except UnsupportedImage:
                refused += 1
                continue
            except Exception as exc:
                unexpected.append((path.name, repr(exc)))
                continue
        assert image.dtype == np.uint8 and image.ndim in (2, 3)
        shown += 1
    assert unexpected == []
    assert shown > 200 and refused > 50
