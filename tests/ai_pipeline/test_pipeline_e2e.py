"""The AI pipeline end to end: C-STORE chest radiographs into a running server, its AI worker
process runs a real ONNX model, the SR comes back into the study, the study is flagged and
ordered first in the worklist, and a reader's verdict is kept."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset

from tests.ai_models.tiny import card_json, make_model_folder
from tests.conftest import RunningServer, start_server, wait_for_port
from tests.e2e.helpers import image_uids, store
from tests.factories import make_image, make_radiograph, new_uid

ROWS = 64


def chest(study_uid: str, bright_fraction: float, **extra: Any) -> Dataset:
    """A CR chest radiograph; the tiny model's score grows with ``bright_fraction``."""
    ds = make_radiograph(study_uid=study_uid, rows=ROWS, columns=ROWS, **extra)
    pixels = np.full((ROWS, ROWS), 100, dtype=np.uint16)
    pixels.flat[: int(bright_fraction * pixels.size)] = 4000
    ds.PixelData = pixels.tobytes()
    return ds


def http_json(server: RunningServer, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``body``) a JSON route; HTTP errors are raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=data,
        headers={"Content-Type": "application/json"} if data else {},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition: Any, timeout: float = 60.0) -> Any:
    """Poll until ``condition()`` returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the AI pipeline")


def tiny_cxr(folder: Path) -> Path:
    """The tiny test model as a chest X-ray model with our default routing: its score is
    sigmoid(4 * mean + 1) over the image scaled to [-1, 1], flagged from 0.5."""
    card = card_json(
        name="tiny-cxr",
        input={
            "name": "input",
            "shape": ["batch", 8, 8, 3],
            "layout": "NHWC",
            "resize": "nearest",
            "scaling": "x / 127.5 - 1.0",
        },
        output={
            "name": "logits",
            "classes": ["NORMAL", "PNEUMONIA"],
            "postprocess": "softmax over axis 1; p_pneumonia = softmax[:, 1]",
        },
        operating_point={"threshold": 0.5, "source": "test", "model_version": "1.0"},
        routing=None,
    )
    return make_model_folder(folder, card)


def ai_config(models_dir: Path, **overrides: Any) -> str:
    values = {"stable_seconds": 1.0, "heatmaps": "false", "poll_seconds": 0.2, **overrides}
    lines = [f'[ai]\nenabled = true\nmodels_dir = "{models_dir}"']
    lines += [f"{key} = {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def start_ai_server(tmp_path: Path, models: Path, **ai_options: Any) -> RunningServer:
    """A server with the AI on (models in ``models``), its HTTP port answering."""
    running = start_server(tmp_path, extra_config=ai_config(models, **ai_options))
    wait_for_port(running.http_port, process=running.process)
    return running


@pytest.fixture
def ai_server(tmp_path: Path) -> Any:
    models = tmp_path / "models"
    tiny_cxr(models / "tiny-cxr")
    running = start_ai_server(tmp_path, models, heatmaps="true")
    try:
        yield running
    finally:
        running.stop()


def results_of(server: RunningServer, study_uid: str) -> list[dict[str, Any]]:
    return list(http_json(server, f"/ai/studies/{study_uid}"))


def test_flagged_study_gets_sr_flag_and_goes_first(ai_server: RunningServer) -> None:
    abnormal, normal, ct_study = new_uid(), new_uid(), new_uid()
    assert store(ai_server.dimse_port, [chest(normal, 0.05, patient_id="P-N")]) == [0]
    assert store(ai_server.dimse_port, [chest(abnormal, 0.9, patient_id="P-A")]) == [0]
    assert store(ai_server.dimse_port, [make_image(study_uid=ct_study, patient_id="P-C")]) == [0]

    flagged = wait_for(lambda: results_of(ai_server, abnormal))[0]
    assert flagged["flagged"] is True
    assert flagged["score"] > 0.9
    assert flagged["model"] == {"name": "tiny-cxr", "version": "1.0", "clinical_use": False}
    assert flagged["research_use_only"] is True
    not_flagged = wait_for(lambda: results_of(ai_server, normal))[0]
    assert not_flagged["flagged"] is False and not_flagged["score"] < 0.1

    # The SR is in the study, visible to C-FIND like any instance.
    # The SR and the heat map (flagged studies only) are in the study, visible to C-FIND.
    in_study = image_uids(ai_server.dimse_port, StudyInstanceUID=abnormal)
    assert {flagged["sr_sop_uid"], flagged["heatmap_sop_uid"]} < in_study and len(in_study) == 3
    assert not_flagged["heatmap_sop_uid"] == ""
    assert len(image_uids(ai_server.dimse_port, StudyInstanceUID=normal)) == 2

    # Most urgent first; the CT (not routed to the model) is listed but unread by the AI.
    worklist = http_json(ai_server, "/ai/worklist")
    assert [entry["study_uid"] for entry in worklist[:2]] == [abnormal, normal]
    assert {entry["study_uid"] for entry in worklist} == {abnormal, normal, ct_study}
    assert next(e for e in worklist if e["study_uid"] == ct_study)["ai"] is None
    jobs = http_json(ai_server, "/ai/jobs")
    assert jobs["counts"].get("done") == 2
    assert jobs["counts"].get("skipped") is None  # the CT was never queued (modality filter)

    # A reader rejects the flag; it is kept with the result.
    answer = http_json(
        ai_server,
        f"/ai/results/{flagged['id']}/feedback",
        {"verdict": "rejected", "reader": "dr.tran", "comment": "artefact"},
    )
    assert answer["result"] == flagged["id"]
    result = http_json(ai_server, f"/ai/results/{flagged['id']}")
    assert result["feedback"] == "rejected"
    assert [f["reader"] for f in result["feedback_history"]] == ["dr.tran"]


def test_bad_feedback_is_refused(ai_server: RunningServer) -> None:
    study = new_uid()
    store(ai_server.dimse_port, [chest(study, 0.9)])
    result = wait_for(lambda: results_of(ai_server, study))[0]
    for body, status in (
        ({"verdict": "maybe", "reader": "x"}, 400),
        ({"verdict": "confirmed", "reader": " "}, 400),
        ({"verdict": 3, "reader": "x"}, 400),
    ):
        with pytest.raises(urllib.error.HTTPError) as caught:
            http_json(ai_server, f"/ai/results/{result['id']}/feedback", body)
        assert caught.value.code == status
    with pytest.raises(urllib.error.HTTPError) as caught:
        http_json(ai_server, "/ai/results/999999/feedback", {"verdict": "confirmed", "reader": "x"})
    assert caught.value.code == 404


def test_series_is_read_once_it_is_stable(tmp_path: Path) -> None:
    """Instances arriving within the stable delay are read together, in one result."""
    models = tmp_path / "models"
    tiny_cxr(models / "tiny-cxr")
    server = start_server(tmp_path, extra_config=ai_config(models, stable_seconds=3.0))
    try:
        study, series = new_uid(), new_uid()
        first = chest(study, 0.1, series_uid=series, instance_number=1)
        second = chest(study, 0.8, series_uid=series, instance_number=2)
        store(server.dimse_port, [first])
        time.sleep(1.5)
        assert results_of(server, study) == []
        store(server.dimse_port, [second])
        result = wait_for(lambda: results_of(server, study))
        assert len(result) == 1
        assert set(result[0]["details"]["image_scores"]) == {
            str(first.SOPInstanceUID),
            str(second.SOPInstanceUID),
        }
        assert result[0]["flagged"] is True  # the series score is its highest image score
    finally:
        server.stop()
