"""The Orthanc API on a PostgreSQL index: store, find (case-insensitive), labels, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.conftest import start_server, wait_for_port
from tests.factories import make_series, to_bytes

pytestmark = pytest.mark.postgres


def test_orthanc_api_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    server = start_server(tmp_path, index_url=postgres_url)
    try:
        wait_for_port(server.http_port, process=server.process)
        url = f"http://127.0.0.1:{server.http_port}"
        series = make_series(2, patient_id="PG1", study_description="CT Thorax")
        answers = [
            requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30).json() for ds in series
        ]
        study = answers[0]["ParentStudy"]
        body = {"Level": "Study", "Query": {"StudyDescription": "ct thorax"}, "Expand": True}
        found = requests.post(f"{url}/tools/find", data=json.dumps(body), timeout=30).json()
        assert [s["ID"] for s in found] == [study]
        assert requests.put(f"{url}/studies/{study}/labels/pg", timeout=30).status_code == 200
        assert requests.get(f"{url}/studies/{study}/labels", timeout=30).json() == ["pg"]
        deleted = requests.delete(f"{url}/studies/{study}", timeout=30).json()
        assert deleted == {"RemainingAncestor": None}
        assert requests.get(f"{url}/tools/labels", timeout=30).json() == []
        assert requests.get(f"{url}/statistics", timeout=30).json()["CountInstances"] == 0
    finally:
        server.stop()
