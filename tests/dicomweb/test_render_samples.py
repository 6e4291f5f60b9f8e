"""Every real sample either renders or is refused with a clear reason (never a crash)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from dicomweb.render import CannotRender, RenderOptions, render
from pacs.core.archive import Archive
from pacs.core.errors import NotFound, PacsError
from pacs.core.model import Level
from pacs.core.query import Query
from storage import FileSystemBlobStore


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_sample_renders_or_is_refused_cleanly(shared_data: Path, tmp_path: Path) -> None:
    archive = Archive.open(
        f"sqlite:///{tmp_path / 'index.sqlite'}",
        FileSystemBlobStore(tmp_path / "blobs", fsync=False),
    )
    try:
        for path in sorted((shared_data / "dicom-samples").rglob("*")):
            if path.is_file():  # refusals at ingest are covered by the DIMSE sample test
                with contextlib.suppress(PacsError):
                    archive.store(path.read_bytes(), "test")
        instances = archive.instances_matching(
            Query(level=Level.STUDY, filters={"StudyInstanceUID": "*"})
        )
        assert len(instances) > 200
        rendered = refused = 0
        for stored in instances:
            try:
                data = render(archive, stored, RenderOptions(media_type="image/png"))
            except (NotFound, CannotRender):
                refused += 1
                continue
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            rendered += 1
        assert rendered > 150, (rendered, refused)
    finally:
        archive.close()
