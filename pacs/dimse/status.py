"""DIMSE status codes (PS3.4, PS3.7 Annex C) for queries and retrieves, and the mapping
from core errors; a refused store's status is ``pacs.core.store_status``, shared with STOW-RS."""

from __future__ import annotations

from pacs.core.errors import (
    InvalidQuery,
    NotFound,
    OutOfResources,
)

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
FIND_OUT_OF_RESOURCES = 0xA700
IDENTIFIER_MISMATCH = 0xA900  # identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122  # refused by /tools/accepted-transfer-syntaxes and the like
MOVE_UNKNOWN_DESTINATION = 0xA801
SUBOPS_WARNING = 0xB000


def query_status(error: Exception) -> int:
    """The C-FIND / C-MOVE / C-GET failure status for a core error."""
    if isinstance(error, InvalidQuery | NotFound):
        return IDENTIFIER_MISMATCH
    if isinstance(error, OutOfResources):
        return FIND_OUT_OF_RESOURCES
    return UNABLE_TO_PROCESS
