"""Fixtures of the ai_models tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$PACS_SHARED_DATA``, for a git worktree); skip where absent."""
    path = Path(os.environ.get("PACS_SHARED_DATA", SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
