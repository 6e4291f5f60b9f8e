"""A full blob disk: C-STORE answers 0xA700 (out of resources), loses nothing already
stored, and ingest resumes once space is freed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import start_server
from tests.e2e.helpers import image_uids, store
from tests.factories import make_series, new_uid, to_bytes


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root, as on the project's machines; skips elsewhere)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def test_full_disk_answers_out_of_resources_and_recovers(tmp_path: Path, tiny_disk: Path) -> None:
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * (2 * 1024 * 1024))
    server = start_server(tmp_path, extra_config=f'[storage]\npath = "{tiny_disk / "blobs"}"\n')
    try:
        study = new_uid()
        # 256x256x2 bytes = 128 KiB each: the 2 MiB left fill up after about 15 of them.
        series = make_series(30, study_uid=study, rows=256, columns=256)
        statuses = store(server.dimse_port, series)
        stored = {
            str(ds.SOPInstanceUID) for ds, code in zip(series, statuses, strict=True) if code == 0
        }
        refused = [code for code in statuses if code != 0]
        assert stored and refused, statuses
        assert set(refused) == {0xA700}
        assert "out of resources" in server.log_text().lower() or "0xA700" in server.log_text()
        assert image_uids(server.dimse_port, StudyInstanceUID=study) == stored
        assert list(tiny_disk.rglob("*.partial")) == []

        ballast.unlink()  # space is freed: ingest resumes without a restart
        rest = [ds for ds, code in zip(series, statuses, strict=True) if code != 0]
        assert set(store(server.dimse_port, rest)) == {0}
        assert len(image_uids(server.dimse_port, StudyInstanceUID=study)) == 30
    finally:
        server.stop()


def _stow(http_port: int, parts: list[bytes]) -> requests.Response:
    boundary = "full-disk-boundary"
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return requests.post(
        f"http://127.0.0.1:{http_port}/dicom-web/studies",
        data=body + f"--{boundary}--\r\n".encode(),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
        timeout=60,
    )


def test_full_disk_answers_stow_507_and_orthanc_507_then_recovers(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """STOW-RS answers 507 with 0xA700 reasons when nothing fits, the Orthanc API 507 with
    its error JSON; nothing is half-written, and the same requests succeed once space is
    freed."""
    server = start_server(tmp_path, extra_config=f'[storage]\npath = "{tiny_disk / "blobs"}"\n')
    try:
        (tiny_disk / "blobs").mkdir(exist_ok=True)
        free = shutil.disk_usage(tiny_disk).free
        ballast = tiny_disk / "ballast"
        ballast.write_bytes(b"\0" * max(free - 64 * 1024, 0))  # leaves less than one instance
        study = new_uid()
        series = make_series(3, study_uid=study, rows=256, columns=256)
        parts = [to_bytes(ds) for ds in series]

        answer = _stow(server.http_port, parts)
        assert answer.status_code == 507, answer.text
        reasons = {item["00081197"]["Value"][0] for item in answer.json()["00081198"]["Value"]}
        assert reasons == {0xA700}
        orthanc = requests.post(
            f"http://127.0.0.1:{server.http_port}/instances", data=parts[0], timeout=30
        )
        assert orthanc.status_code == 507, orthanc.text
        assert "HttpError" in orthanc.json() or "Message" in orthanc.json()
        assert image_uids(server.dimse_port, StudyInstanceUID=study) == set()
        assert list(tiny_disk.rglob("*.partial")) == []

        ballast.unlink()
        assert _stow(server.http_port, parts).status_code == 200
        assert image_uids(server.dimse_port, StudyInstanceUID=study) == {
            str(ds.SOPInstanceUID) for ds in series
        }
    finally:
        server.stop()
