"""The real pretrained chest X-ray model (../shared/data/cxr-model, used in place, never
copied) in the running pipeline: real DICOM files stored over C-STORE come back with the
reference scores, and the model is shown as research use only."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.ai_pipeline.test_pipeline_e2e import ai_config, http_json, wait_for
from tests.conftest import start_server, wait_for_port
from tests.e2e.helpers import store

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

# One file per SOP Instance UID (the other encodings of RG1 share its UIDs).
FILES = (
    "pydicom-data/RG1_UNCR.dcm",
    "orthanc-tests/Issue44/Monochrome1-Jpeg.dcm",
    "torchxrayvision/Fake_MONOHR1.dcm",
    "highdicom/dx_image.dcm",
)


def test_reference_scores_through_the_pipeline(shared_data: Path, tmp_path: Path) -> None:
    reference = {
        row["file"]: float(row["p_pneumonia"])
        for row in csv.DictReader(
            (shared_data / "cxr-model" / "reference_outputs_dicom.csv").open(encoding="utf-8")
        )
    }
    models = tmp_path / "models"
    models.mkdir()
    (models / "pneumonia").symlink_to(shared_data / "cxr-model", target_is_directory=True)
    routes = '[[ai.routes]]\nmodel = "pneumonia"\nmodalities = ["CR", "DX"]\n'
    server = start_server(tmp_path, extra_config=ai_config(models) + routes)
    try:
        wait_for_port(server.http_port, process=server.process)
        (model,) = http_json(server, "/ai/models")
        assert model["name"] == "pneumonia" and model["clinical_use"] is False
        assert model["use"] == "research use only, not for clinical use"
        datasets = {name: dcmread(shared_data / "dicom-samples" / name) for name in FILES}
        for ds in datasets.values():
            assert store(server.dimse_port, [ds]) == [0]
        for name, ds in datasets.items():
            study = str(ds.StudyInstanceUID)
            results = wait_for(lambda study=study: http_json(server, f"/ai/studies/{study}"), 120)
            by_series = {r["series_uid"]: r for r in results}
            result = by_series[str(ds.SeriesInstanceUID)]
            assert abs(result["score"] - reference[name]) <= 0.01, (name, result["score"])
            assert result["flagged"] == (reference[name] >= 0.5)
    finally:
        server.stop()
