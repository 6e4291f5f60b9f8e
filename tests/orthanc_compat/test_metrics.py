"""``/tools/metrics-prometheus`` and the ``/tools/metrics`` switch."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests

from tests.conftest import start_server
from tests.factories import make_series
from tests.orthanc_compat.conftest import Stored, post

# Prometheus text exposition: name{label="value",...} value [timestamp]
LINE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*)\})? (?P<value>-?[0-9.e+-]+|NaN)( (?P<ts>-?[0-9]+))?$'
)


def scrape(url: str) -> dict[str, float]:
    response = requests.get(f"{url}/tools/metrics-prometheus", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    values: dict[str, float] = {}
    now_ms = time.time() * 1000
    for line in response.text.splitlines():
        match = LINE.match(line)
        assert match, line
        assert abs(int(match["ts"]) - now_ms) < 60_000  # milliseconds, as Orthanc
        key = match["name"] + (f"{{{match['labels']}}}" if match["labels"] else "")
        values[key] = float(match["value"])
    return values


def test_prometheus_metrics_follow_the_archive(stored: Stored) -> None:
    before = scrape(stored.url)
    statistics = requests.get(f"{stored.url}/statistics", timeout=30).json()
    assert before["orthanc_count_instances"] == statistics["CountInstances"]
    assert before["orthanc_count_studies"] == statistics["CountStudies"]
    assert before["orthanc_count_patients"] == statistics["CountPatients"]
    assert before["orthanc_count_series"] == statistics["CountSeries"]
    assert abs(before["orthanc_disk_size_mb"] - int(statistics["TotalDiskSize"]) / 2**20) < 1e-6
    for name in ("completed", "failed", "pending", "running", "success"):
        assert f"orthanc_jobs_{name}" in before
    for ds in make_series(2, patient_id="METRICS"):
        assert post(stored.url, ds).status_code == 200
    study = requests.get(f"{stored.url}/studies", timeout=30).json()[0]
    job = requests.post(
        f"{stored.url}/studies/{study}/archive", json={"Asynchronous": True}, timeout=30
    ).json()["ID"]
    deadline = time.monotonic() + 30
    while requests.get(f"{stored.url}/jobs/{job}", timeout=30).json()["State"] != "Success":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = scrape(stored.url)
    assert after["orthanc_count_instances"] == before["orthanc_count_instances"] + 2
    assert after["orthanc_count_patients"] == before["orthanc_count_patients"] + 1
    assert after["orthanc_jobs_success"] == before["orthanc_jobs_success"] + 1
    assert after["orthanc_jobs_completed"] == before["orthanc_jobs_completed"] + 1


def test_metrics_switch(stored: Stored) -> None:
    url = stored.url
    assert requests.get(f"{url}/tools/metrics", timeout=30).text == "1"
    try:
        assert requests.put(f"{url}/tools/metrics", data="0", timeout=30).status_code == 200
        assert requests.get(f"{url}/tools/metrics", timeout=30).text == "0"
        disabled = requests.get(f"{url}/tools/metrics-prometheus", timeout=30)
        assert disabled.status_code == 200 and disabled.text == ""  # as Orthanc
        bad = requests.put(f"{url}/tools/metrics", data="maybe", timeout=30)
        assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 15
        assert requests.get(f"{url}/tools/metrics", timeout=30).text == "0"
    finally:
        assert requests.put(f"{url}/tools/metrics", data="true", timeout=30).status_code == 200
    assert requests.get(f"{url}/tools/metrics", timeout=30).text == "1"
    assert "orthanc_count_instances" in scrape(url)


def test_tier_metrics(tmp_path: Path) -> None:
    cold = tmp_path / "cold"
    server = start_server(
        tmp_path,
        "[storage]\nscrub_rate_mb_s = 0\n"
        f'[[storage.tiers]]\nname = "cold"\nlocation = "{cold}"\n'
        "after_days_without_access = 1000\n",
    )
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        for ds in make_series(3, patient_id="TIERM"):
            assert post(url, ds).status_code == 200
        values = scrape(url)
        assert values['pacs_storage_tier_objects{tier="hot"}'] == 3
        assert values['pacs_storage_tier_objects{tier="cold"}'] == 0
        hot_bytes = values['pacs_storage_tier_bytes{tier="hot"}']
        assert hot_bytes == int(
            requests.get(f"{url}/statistics", timeout=30).json()["TotalDiskSize"]
        )
        assert values['pacs_storage_tier_disk_free_bytes{tier="cold"}'] > 0
    finally:
        server.stop()
