"""``pacs ai evaluate`` end to end, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ai_models.card import load_card
from tests.ai_models.test_evaluate import labelled_folder
from tests.ai_models.tiny import make_model_folder
from tests.conftest import REPO


def pacs(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "orthanc-compat")])}
    return subprocess.run(
        [sys.executable, "-m", "pacs", "ai", "evaluate", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_evaluate_json_and_record(tmp_path: Path) -> None:
    model = make_model_folder(tmp_path / "model")
    labels = labelled_folder(tmp_path / "set")
    common = ["--model", str(model), "--labels", str(labels), "--label-column", "label"]
    result = pacs(*common, "--json", "--bootstrap", "100", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["n"], report["positives"], report["auroc"]) == (7, 4, 1.0)
    assert len(report["failures"]) == 4 and report["model_version"] == "1.0"
    assert load_card(model).evaluations == ()
    recorded = pacs(*common, "--record", "--bootstrap", "100")
    assert recorded.returncode == 0, recorded.stderr
    assert "AUROC        1.000" in recorded.stdout and "recorded in" in recorded.stderr
    (entry,) = load_card(model).evaluations
    assert entry["dataset"] == "set" and entry["label_column"] == "label"


def test_evaluate_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    model = make_model_folder(tmp_path / "model")
    labels = labelled_folder(tmp_path / "set")
    result = pacs("--model", str(model), "--labels", str(labels), "--label-column", "nope")
    assert result.returncode == 2 and "no column 'nope'" in result.stderr
    result = pacs("--model", str(tmp_path), "--labels", str(labels), "--label-column", "label")
    assert result.returncode == 2 and "no model_card.json" in result.stderr
    assert "Traceback" not in result.stderr
