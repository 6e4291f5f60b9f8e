"""The DICOM status of a refused store (PS3.4 B.2.3), shared by C-STORE and STOW-RS
(whose FailureReason uses the same codes)."""

from __future__ import annotations

from pacs.core.errors import (
    DatasetMismatch,
    DuplicateInstance,
    InvalidDicom,
    OutOfResources,
    RefusedInstance,
    StorageUnavailable,
)

OUT_OF_RESOURCES = 0xA700
DATA_SET_MISMATCH = 0xA900  # data set does not match SOP class (or the request)
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.5 general status


def store_failure_status(error: Exception) -> int:
    """The failure status for an error raised by ``Archive.store``."""
    if isinstance(error, DatasetMismatch):
        return DATA_SET_MISMATCH
    if isinstance(error, DuplicateInstance):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(error, OutOfResources | StorageUnavailable):
        return OUT_OF_RESOURCES
    if isinstance(error, InvalidDicom | RefusedInstance):
        return CANNOT_UNDERSTAND
    return CANNOT_UNDERSTAND
