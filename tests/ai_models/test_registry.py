"""The registry: valid folders load, invalid ones are skipped with the reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ai_models.registry import ModelRegistry
from tests.ai_models.tiny import card_json, make_model_folder


def test_scan_loads_valid_and_skips_invalid_with_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_model_folder(tmp_path / "a-good", card_json(name="good"))
    make_model_folder(tmp_path / "b-bad", card_json(name="bad", output={"classes": "x"}))
    make_model_folder(tmp_path / "c-same-name", card_json(name="good"))
    (tmp_path / "d-not-a-model").mkdir()
    (tmp_path / "loose-file.txt").write_text("x", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        registry = ModelRegistry.scan(tmp_path)
    assert registry.names() == ["good"]
    assert registry.get("good").folder == tmp_path / "a-good"
    reasons = {folder.name: reason for folder, reason in registry.errors}
    assert set(reasons) == {"b-bad", "c-same-name"}
    assert "output.classes" in reasons["b-bad"]
    assert "already registered" in reasons["c-same-name"]
    assert "b-bad skipped" in caplog.text
    with pytest.raises(KeyError, match="known: good"):
        registry.get("missing")


def test_scan_of_a_missing_folder_is_empty_with_reason(tmp_path: Path) -> None:
    registry = ModelRegistry.scan(tmp_path / "absent")
    assert registry.cards == []
    assert registry.errors == [(tmp_path / "absent", "the models folder does not exist")]
