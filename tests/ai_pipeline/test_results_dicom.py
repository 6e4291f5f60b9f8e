"""The AI's DICOM output: a TID 1500 report highdicom reads back with the model's identity,
score and finding, and a heat map Secondary Capture; both with UIDs fixed by what they are
about, so a job run twice stores them once."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.sr.codedict import codes

from ai_models.card import load_card
from ai_models.results_dicom import SeriesFinding, build_heatmap, build_report
from tests.ai_pipeline.test_pipeline_e2e import tiny_cxr
from tests.factories import make_radiograph, new_uid


def text_items(items: Any) -> Iterator[tuple[str, str]]:
    """(concept name, text) of every TEXT content item, at any depth."""
    for item in items:
        if item.get("ValueType") == "TEXT":
            yield item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue
        yield from text_items(item.get("ContentSequence", []))


def test_report_reads_back_with_algorithm_score_and_finding(tmp_path: Path) -> None:
    card = load_card(tiny_cxr(tmp_path / "m"))
    study, series = new_uid(), new_uid()
    images = [
        make_radiograph(study_uid=study, series_uid=series, instance_number=n) for n in (1, 2)
    ]
    finding = SeriesFinding(card, 0.83, True, {str(ds.SOPInstanceUID): 0.83 for ds in images})
    uid, raw = build_report(finding, images, generation=3)
    assert build_report(finding, images, generation=3)[0] == uid  # same job, same object
    assert build_report(finding, images, generation=4)[0] != uid  # the series changed

    sr = hd.sr.srread(BytesIO(raw))
    assert sr.StudyInstanceUID == study and sr.SOPInstanceUID == uid and sr.Modality == "SR"
    assert "research use only" in sr.SeriesDescription
    report = hd.sr.MeasurementReport.from_sequence([sr])
    (group,) = report.get_image_measurement_groups()
    texts = dict(text_items(group))
    assert texts["Algorithm Name"] == "tiny-cxr" and texts["Algorithm Version"] == "1.0"
    (measurement,) = group.get_measurements()
    assert measurement.value == 0.83
    (evaluation,) = group.get_qualitative_evaluations()
    assert evaluation.name.meaning == "Pneumonia" and evaluation.value == codes.SCT.Present
    referenced = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in group.source_images
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in images}


def test_heatmap_is_a_secondary_capture_of_the_study(tmp_path: Path) -> None:
    card = load_card(tiny_cxr(tmp_path / "m"))
    source = make_radiograph(rows=32, columns=32)
    overlay = np.zeros((32, 32, 3), dtype=np.uint8)
    overlay[..., 0] = 200
    uid, raw = build_heatmap(card, source, overlay, generation=1)
    ds = dcmread(BytesIO(raw))
    assert ds.SOPInstanceUID == uid and ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PatientID == source.PatientID and ds.PhotometricInterpretation == "RGB"
    assert np.array_equal(ds.pixel_array, overlay)
