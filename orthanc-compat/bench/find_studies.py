"""``/tools/find`` at STUDY level and ``/studies?expand`` over N studies, this server next to a
real Orthanc (1.10.1) holding the same studies, in the same run (issue #5 target).

    PYTHONPATH=.:orthanc-compat python orthanc-compat/bench/find_studies.py --studies 20000

One small instance a study, sent to both servers over HTTP (``POST /instances``, 8 at a time).
Each timing is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.conftest import free_port, wait_for_port
from tests.factories import make_image, to_bytes

NAMES = ["Nguyen^Van A", "Tran^Thi B", "Le^Van C", "Pham^Thi D", "Hoang^Van E"]
DESCRIPTIONS = ["CT CHEST", "CT HEAD", "MR BRAIN", "XR CHEST", "US ABDOMEN"]


def _start_ours(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    folder.mkdir(parents=True)
    http = free_port()
    config = folder / "pacs.toml"
    config.write_text(
        f'[server]\ndata_dir = "{folder / "data"}"\n[dimse]\nport = {free_port()}\n'
        f'host = "127.0.0.1"\n[http]\nport = {http}\nhost = "127.0.0.1"\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pacs", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(http, timeout=60, process=process)
    return process, f"http://127.0.0.1:{http}"


def _start_orthanc(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    folder.mkdir(parents=True)
    http = free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "DicomPort": free_port(),
        "HttpPort": http,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "Plugins": [],
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    process = subprocess.Popen(
        ["Orthanc", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(http, timeout=60, process=process)
    return process, f"http://127.0.0.1:{http}"


def _post(url: str, raw: bytes) -> None:
    """POST one file on this thread's session; retried when a kept-alive socket was closed."""
    session = getattr(_local, "session", None) or requests.Session()
    _local.session = session
    for attempt in range(3):
        try:
            session.post(f"{url}/instances", data=raw, timeout=60).raise_for_status()
            return
        except requests.ConnectionError:
            if attempt == 2:
                raise


_local = threading.local()


def _upload(urls: list[str], count: int) -> None:
    def one(n: int) -> None:
        ds = make_image(
            patient_id=f"P{n % 5000:05d}",
            patient_name=NAMES[n % len(NAMES)],
            study_description=DESCRIPTIONS[n % len(DESCRIPTIONS)],
            study_date=f"20{10 + n % 14:02d}{1 + n % 12:02d}{1 + n % 28:02d}",
            accession=f"A{n:06d}",
            rows=4,
            columns=4,
        )
        raw = to_bytes(ds)
        for url in urls:
            _post(url, raw)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))


def _caller(method: str, url: str, body: Any) -> Callable[[], Any]:
    return lambda: requests.request(method, url, json=body, timeout=600).json()


def _best(repeat: int, call: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("Orthanc") is None:
        sys.exit("Orthanc is not installed (apt-get install orthanc)")
    with tempfile.TemporaryDirectory() as tmp:
        ours_process, ours = _start_ours(Path(tmp) / "ours")
        orthanc_process, orthanc = _start_orthanc(Path(tmp) / "orthanc")
        try:
            started = time.perf_counter()
            _upload([ours, orthanc], args.studies)
            upload_s = time.perf_counter() - started
            queries: dict[str, tuple[str, str, Any]] = {
                "find_all_ids": ("POST", "/tools/find", {"Level": "Study", "Query": {}}),
                "find_name_wildcard": (
                    "POST",
                    "/tools/find",
                    {"Level": "Study", "Query": {"PatientName": "nguyen*"}},
                ),
                "find_date_range_expand": (
                    "POST",
                    "/tools/find",
                    {"Level": "Study", "Query": {"StudyDate": "20200101-20211231"}, "Expand": True},
                ),
                "studies_expand": ("GET", "/studies?expand", None),
            }
            results: dict[str, Any] = {}
            for name, (method, path, body) in queries.items():
                row: dict[str, Any] = {}
                for label, url in (("ours", ours), ("orthanc", orthanc)):
                    seconds, answer = _best(args.repeat, _caller(method, f"{url}{path}", body))
                    row[label] = {"seconds": round(seconds, 3), "results": len(answer)}
                results[name] = row
            # Orthanc 1.12.5's OrderBy: Debian's Orthanc 1.10.1 ignores it, so ours alone
            newest = {
                "Level": "Study",
                "Query": {},
                "OrderBy": [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "DESC"}],
                "Limit": 100,
            }
            seconds, answer = _best(args.repeat, _caller("POST", f"{ours}/tools/find", newest))
            results["find_order_by_date_limit_100"] = {
                "ours": {"seconds": round(seconds, 3), "results": len(answer)}
            }
        finally:
            for process in (ours_process, orthanc_process):
                process.terminate()
                process.wait(timeout=60)
    print(
        json.dumps(
            {
                "studies": args.studies,
                "upload_seconds_both": round(upload_s, 1),
                "repeat": args.repeat,
                "cpu_count": os.cpu_count(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
