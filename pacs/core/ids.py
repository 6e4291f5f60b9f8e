"""Validation of DICOM identifiers that reach the index or the filesystem; public ids."""

from __future__ import annotations

import hashlib
import re

_LENIENT_UID = re.compile(r"^[0-9][0-9.]*$")


def is_acceptable_uid(value: str) -> bool:
    """What we accept from modalities: digits and dots, at most 64 chars (some modalities
    send components with leading zeros; tolerated, since the UID is never used as a path)."""
    return 0 < len(value) <= 64 and bool(_LENIENT_UID.match(value)) and ".." not in value


def public_id(*identifiers: str) -> str:
    """The public id of a resource: SHA-1 of its DICOM identifiers joined with ``|``
    (PatientID; + StudyInstanceUID; + SeriesInstanceUID; + SOPInstanceUID), written as five
    groups of eight hex digits. These are Orthanc's ids, so Orthanc clients find the same
    resources here."""
    digest = hashlib.sha1("|".join(identifiers).encode("utf-8"), usedforsecurity=False)
    text = digest.hexdigest()
    return "-".join(text[start : start + 8] for start in range(0, 40, 8))
