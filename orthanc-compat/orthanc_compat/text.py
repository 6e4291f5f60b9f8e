"""DICOM values as Orthanc writes them in JSON."""

from __future__ import annotations

from typing import Any

from pydicom.multival import MultiValue


def element_text(value: Any) -> str:
    """Text, multiple values joined by ``\\``, bytes as Latin-1, None as ''."""
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(element_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)
