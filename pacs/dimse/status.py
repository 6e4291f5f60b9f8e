"""DIMSE status codes (PS3.4 and PS3.7 Annex C) and the mapping from core errors."""

from __future__ import annotations

from pacs.core.errors import (
    InvalidQuery,
    NotFound,
    OutOfResources,
    PacsError,
)
from pacs.core.store_status import store_failure_status

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.5: general status "Duplicate SOP Instance"
STORE_OUT_OF_RESOURCES = 0xA700
STORE_DATASET_MISMATCH = 0xA900  # data set does not match SOP class
STORE_CANNOT_UNDERSTAND = 0xC000
FIND_OUT_OF_RESOURCES = 0xA700
IDENTIFIER_MISMATCH = 0xA900  # identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC000
MOVE_OUT_OF_RESOURCES_SUBOPS = 0xA702
MOVE_UNKNOWN_DESTINATION = 0xA801
SUBOPS_WARNING = 0xB000


def store_status(error: Exception) -> int:
    """The C-STORE failure status for a core error."""
    return store_failure_status(error)


def query_status(error: Exception) -> int:
    """The C-FIND / C-MOVE / C-GET failure status for a core error."""
    if isinstance(error, InvalidQuery | NotFound):
        return IDENTIFIER_MISMATCH
    if isinstance(error, OutOfResources):
        return FIND_OUT_OF_RESOURCES
    if isinstance(error, PacsError):
        return UNABLE_TO_PROCESS
    return UNABLE_TO_PROCESS
