"""One error tree for the core; each door maps it once to its own wire format."""

from __future__ import annotations


class PacsError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(PacsError):
    """The configuration is invalid."""


class InvalidDicom(PacsError):
    """The bytes are not a DICOM data set we can keep (malformed, truncated, missing keys)."""


class MissingUniqueKey(InvalidDicom):
    """A unique key (Study, Series or SOP Instance UID) is absent or invalid."""


class DatasetMismatch(InvalidDicom):
    """The data set's SOP Class or Instance UID differs from what the request announced."""


class RefusedInstance(PacsError):
    """The instance is well formed but refused by policy (size limits, SOP class)."""


class DuplicateInstance(PacsError):
    """The SOP Instance UID is already stored and the duplicate policy is 'reject'."""


class OutOfResources(PacsError):
    """Storage or the index cannot take more data (disk full, quota)."""


class NotFound(PacsError):
    """The requested resource does not exist."""


class InvalidQuery(PacsError):
    """A query identifier or filter cannot be understood."""


class StorageUnavailable(PacsError):
    """A storage tier cannot be read or written right now."""


class OnLegalHold(PacsError):
    """The study (or patient) is under legal hold: it cannot be deleted or purged."""


class Conflict(PacsError):
    """The request contradicts the resource's state (e.g. restoring a purged deletion)."""
