"""The modality registry: configured modalities plus stored ones, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs.core.archive import Archive
from pacs.core.errors import InvalidQuery, NotFound
from pacs.core.remote import RemoteModality
from storage import FileSystemBlobStore

CONFIGURED = RemoteModality("ct", "CT1", "10.0.0.1", 104)


def _open(index_url: str, tmp_path: Path) -> Archive:
    return Archive.open(index_url, FileSystemBlobStore(tmp_path / "blobs"), modalities=[CONFIGURED])


def test_stored_modalities_survive_reopening(index_url: str, tmp_path: Path) -> None:
    archive = _open(index_url, tmp_path)
    try:
        registry = archive.modalities
        assert list(registry.all()) == ["ct"] and registry.get("ct").configured
        registry.put(RemoteModality("pacs2", " PACS2 ", "pacs2.local", 11112, manufacturer="GE"))
        assert registry.by_ae("PACS2") == RemoteModality(
            "pacs2", "PACS2", "pacs2.local", 11112, manufacturer="GE"
        )
        registry.put(RemoteModality("pacs2", "PACS2", "pacs2.local", 4242, allow_store=False))
        assert registry.get("pacs2").port == 4242
    finally:
        archive.close()
    archive = _open(index_url, tmp_path)
    try:
        registry = archive.modalities
        assert list(registry.all()) == ["ct", "pacs2"]
        stored = registry.get("pacs2")
        assert stored.port == 4242 and not stored.allow_store and not stored.configured
        assert sorted(registry.ae_titles()) == ["CT1", "PACS2"]
        registry.delete("pacs2")
        assert registry.by_ae("PACS2") is None
        with pytest.raises(NotFound):
            registry.delete("pacs2")
        with pytest.raises(InvalidQuery):
            registry.delete("ct")  # only in the settings file
        registry.put(RemoteModality("ct", "CT9", "10.0.0.9", 104))  # a stored one overrides
        assert registry.get("ct").ae_title == "CT9"
        registry.delete("ct")
        assert registry.get("ct") == CONFIGURED
    finally:
        archive.close()


@pytest.mark.parametrize(
    "bad",
    [
        RemoteModality("x", "A" * 17, "h", 104),
        RemoteModality("x", "A\\B", "h", 104),
        RemoteModality("x", "A", "", 104),
        RemoteModality("x", "A", "h", 0),
        RemoteModality("a/b", "A", "h", 104),
    ],
)
def test_invalid_modalities_are_refused(archive: Archive, bad: RemoteModality) -> None:
    with pytest.raises(InvalidQuery):
        archive.modalities.put(bad)
