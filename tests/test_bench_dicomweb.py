"""The DICOMweb benchmark stays runnable: a smoke run against our server only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.helpers import require_dcmtk

pytestmark = pytest.mark.integration


def test_smoke_run_measures_every_line(tmp_path: Path) -> None:
    require_dcmtk("storescu")
    out = tmp_path / "result.json"
    # orthanc-compat/ too: else an editable install elsewhere may provide orthanc_compat
    path = os.pathsep.join((str(REPO), str(REPO / "orthanc-compat")))
    env = {**os.environ, "BENCH_WORK": str(tmp_path / "work"), "PYTHONPATH": path}
    finished = subprocess.run(
        [
            sys.executable,
            "benchmarks/bench_dicomweb.py",
            "--smoke",
            "--no-orthanc",
            "--json",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads(out.read_text())
    ours = report["results"]["ours"]
    assert not [key for key, value in ours.items() if isinstance(value, dict) and "error" in value]
    missing = [path for path, figure in report["figures"]["ours"].items() if figure is None]
    assert not missing
    # The Vietnamese-written NGUYEN patients (Nguyễn) are found by NGUYEN*.
    assert ours["qido"]["broad"]["matches"] == ours["qido"]["broad"]["expected"] > 0
    assert ours["metadata"]["slices"] == report["sizes"]["series_slices"]
    assert ours["frames_8"]["frames"] == report["sizes"]["series_slices"]
    assert ours["stow"]["instances"] == report["sizes"]["stow_instances"]
    assert "orthanc" not in report["results"]
    assert report["machine"]["cpu_cores"] >= 1
