"""Validation of DICOM identifiers that reach the index or the filesystem."""

from __future__ import annotations

import re

_LENIENT_UID = re.compile(r"^[0-9][0-9.]*$")


def is_acceptable_uid(value: str) -> bool:
    """What we accept from modalities: digits and dots, at most 64 chars (some modalities
    send components with leading zeros; tolerated, since the UID is never used as a path)."""
    return 0 < len(value) <= 64 and bool(_LENIENT_UID.match(value)) and ".." not in value
