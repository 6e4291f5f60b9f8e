"""A full blob disk: C-STORE answers 0xA700 (out of resources), loses nothing already
stored, and ingest resumes once space is freed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.e2e.helpers import image_uids, store
from tests.factories import make_series, new_uid


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
