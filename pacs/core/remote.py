"""Remote DICOM application entities and what the doors may ask of them.

`RemoteModality` is one remote AE (a modality, a workstation, another PACS). `Forwarder`
is the seam through which a REST door echoes, sends to, queries and retrieves from one
without importing the DIMSE door: ``pacs.dimse`` implements it and the composition root
hands the implementation to the doors that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydicom.dataset import Dataset

from pacs.core.errors import PacsError
from pacs.core.model import StoredInstance

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class RemoteModality:
    """A remote AE: where to reach it and what it may do (Orthanc's modality options)."""

    name: str
    ae_title: str
    host: str
    port: int
    manufacturer: str = "Generic"
    allow_echo: bool = True
    allow_find: bool = True
    allow_find_worklist: bool = True
    allow_get: bool = True
    allow_move: bool = True
    allow_store: bool = True
    allow_n_action: bool = True
    allow_event_report: bool = True
    allow_transcoding: bool = True
    local_aet: str = ""
    timeout: int = 0
    configured: bool = field(default=False, compare=False)  # from the TOML file, not the index


@dataclass(frozen=True)
class StoreOutcome:
    """What a C-STORE run to a remote achieved."""

    sent: int
    failed: int
    failed_uids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MoveOutcome:
    """The final counts of a C-MOVE request (PS3.4 C.4.2.1.4)."""

    completed: int
    failed: int
    warning: int
    status: int


class RemoteUnavailable(PacsError):
    """The remote AE could not be reached, or refused or aborted the association."""


class RemoteFailure(PacsError):
    """The remote AE answered a request with a failure status."""


class Forwarder(Protocol):
    """DICOM services against remote AEs (implemented by ``pacs.dimse.remote``)."""

    def echo(self, remote: RemoteModality) -> None:
        """C-ECHO; raises RemoteUnavailable or RemoteFailure."""
        ...

    def store(
        self,
        remote: RemoteModality,
        instances: Sequence[StoredInstance],
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> StoreOutcome:
        """C-STORE stored instances (as stored) over one association."""
        ...

    def find(self, remote: RemoteModality, identifier: Dataset) -> list[Dataset]:
        """C-FIND (study root; patient root at PATIENT level); the identifier carries the
        Query/Retrieve Level. The matches, as received."""
        ...

    def move(
        self,
        remote: RemoteModality,
        identifier: Dataset,
        target_aet: str,
        progress: Progress | None = None,
    ) -> MoveOutcome:
        """C-MOVE what the identifier names from the remote to ``target_aet``."""
        ...

    def get(
        self, remote: RemoteModality, identifier: Dataset, progress: Progress | None = None
    ) -> MoveOutcome:
        """C-GET what the identifier names from the remote into the archive."""
        ...
