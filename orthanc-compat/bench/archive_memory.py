"""Peak memory of the server while it streams a large study as a ZIP (issue #5 target:
a 1 GB study with less than 100 MB of extra memory).

    PYTHONPATH=.:orthanc-compat python orthanc-compat/bench/archive_memory.py --gigabytes 1

Stores the study through ``Archive.store`` into a fresh data folder, starts ``pacs serve`` on
it, downloads ``/studies/{id}/archive`` (checking the ZIP), and samples the server's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import requests

from pacs.core.archive import Archive
from pacs.core.ids import public_id
from storage import FileSystemBlobStore
from tests.conftest import free_port, wait_for_port
from tests.factories import make_image, new_uid, to_bytes

ROWS = COLUMNS = 1600  # 5 MB a 16-bit slice


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "data"
        archive = Archive.open(
            f"sqlite:///{data / 'index.sqlite'}", FileSystemBlobStore(data / "blobs")
        )
        study, series = new_uid(), new_uid()
        count = int(args.gigabytes * 1024**3 / (ROWS * COLUMNS * 2))
        pixels = np.random.default_rng(1).integers(0, 4096, (ROWS, COLUMNS), dtype=np.uint16)
        for number in range(count):
            ds = make_image(
                patient_id="BIG", study_uid=study, series_uid=series, instance_number=number + 1
            )
            ds.Rows, ds.Columns = ROWS, COLUMNS
            ds.PixelData = pixels.tobytes()
            archive.store(to_bytes(ds), "bench")
        total = archive.statistics()["total_size"]
        archive.close()
        http = free_port()
        config = folder / "pacs.toml"
        config.write_text(
            f'[server]\ndata_dir = "{data}"\n[dimse]\nport = {free_port()}\nhost = "127.0.0.1"\n'
            f'[http]\nport = {http}\nhost = "127.0.0.1"\n',
            encoding="utf-8",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "pacs", "--config", str(config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(http, timeout=60, process=server)
            time.sleep(1.0)
            before = _rss_mb(server.pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.05):
                    peak.append(_rss_mb(server.pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            target = folder / "study.zip"
            started = time.perf_counter()
            url = f"http://127.0.0.1:{http}/studies/{public_id('BIG', study)}/archive"
            with requests.get(url, stream=True, timeout=600) as response:
                response.raise_for_status()
                with open(target, "wb") as out:
                    for block in response.iter_content(1024 * 1024):
                        out.write(block)
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
            with zipfile.ZipFile(target) as bundle:
                members = len(bundle.namelist())
                bad = bundle.testzip()
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(
            json.dumps(
                {
                    "instances": count,
                    "study_bytes": total,
                    "zip_members": members,
                    "zip_ok": bad is None,
                    "seconds": round(elapsed, 2),
                    "rss_before_mb": round(before, 1),
                    "rss_peak_mb": round(max(peak), 1),
                    "extra_mb": round(max(peak) - before, 1),
                    "cpu_count": os.cpu_count(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
