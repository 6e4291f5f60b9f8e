"""The DICOM side of `pacs.core.remote.Forwarder`: C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET
as an SCU against a remote AE. C-STORE uses the lean Storage SCU (stored bytes streamed as they
are); the other services are pynetdicom's."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacs.core.archive import Archive
from pacs.core.errors import OutOfResources
from pacs.core.model import StoredInstance
from pacs.core.remote import (
    MoveOutcome,
    Progress,
    RemoteFailure,
    RemoteModality,
    RemoteUnavailable,
    StoreOutcome,
)
from pacs.dimse import upper_layer
from pacs.dimse.store_sender import MAX_CONTEXTS, DestinationUnavailable, StoreSender
from pacs.dimse.upper_layer import ProtocolError

log = logging.getLogger("pacs.dimse")

_PENDING = (0xFF00, 0xFF01)


def _unreachable(remote: RemoteModality, reason: str) -> RemoteUnavailable:
    """The error Orthanc gives when an association cannot be made (its wording)."""
    return RemoteUnavailable(f'DicomAssociation - connecting to AET "{remote.ae_title}": {reason}')


def _why_not_established(remote: RemoteModality, assoc: Association, timeout: float) -> str:
    """Why an association failed: rejected, aborted, or the TCP error met on connecting."""
    if assoc.is_rejected:
        return "association rejected by the remote AE"
    try:
        with socket.create_connection((remote.host, remote.port), timeout=timeout):
            pass
    except OSError as exc:
        return f"TCP Initialization Error: {exc.strerror or exc}"
    if assoc.is_aborted:
        return "association aborted by the remote AE"
    return "no answer to the association request"


class DimseForwarder:
    """Remote DICOM services for the REST doors, reading stored instances from the archive."""

    def __init__(self, archive: Archive, ae_title: str, timeout: float = 30.0) -> None:
        self.archive = archive
        self.ae_title = ae_title
        self.timeout = timeout

    def _timeout(self, remote: RemoteModality) -> float:
        return float(remote.timeout) if remote.timeout > 0 else self.timeout

    def _calling(self, remote: RemoteModality) -> str:
        return remote.local_aet or self.ae_title

    @contextmanager
    def _association(
        self, remote: RemoteModality, contexts: Sequence[Any], **options: Any
    ) -> Iterator[Association]:
        ae = AE(ae_title=self._calling(remote))
        timeout = self._timeout(remote)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
        ae.connection_timeout = timeout
        for context in contexts:
            ae.add_requested_context(context)
        assoc = ae.associate(remote.host, remote.port, ae_title=remote.ae_title, **options)
        if not assoc.is_established:
            raise _unreachable(remote, _why_not_established(remote, assoc, timeout))
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()

    def echo(self, remote: RemoteModality) -> None:
        """C-ECHO; RemoteUnavailable or RemoteFailure when it does not succeed."""
        with self._association(remote, [Verification]) as assoc:
            answer = assoc.send_c_echo()
            status = int(answer.Status) if "Status" in answer else None
        if status != 0x0000:
            raise RemoteFailure(f'C-ECHO to AET "{remote.ae_title}" failed (status {status})')

    def store(
        self,
        remote: RemoteModality,
        instances: Sequence[StoredInstance],
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> StoreOutcome:
        """C-STORE the instances as stored, over one association."""
        if not instances:
            return StoreOutcome(0, 0)
        sender = StoreSender(
            self._calling(remote), remote.ae_title, remote.host, remote.port, self._timeout(remote)
        )
        try:
            sender.open(list(instances))
        except DestinationUnavailable as exc:
            raise _unreachable(remote, str(exc.__cause__ or exc)) from exc
        sent = 0
        failed: list[str] = []
        try:
            for number, stored in enumerate(instances):
                if cancelled is not None and cancelled():
                    failed.extend(s.sop_uid for s in instances[number:])
                    break
                with self.archive.open_instance(stored) as handle:
                    status = sender.send(stored, handle, "", 0)
                if status == 0x0000 or 0xB000 <= status <= 0xBFFF:
                    sent += 1
                else:
                    log.warning(
                        "%s refused %s: status 0x%04X", remote.ae_title, stored.sop_uid, status
                    )
                    failed.append(stored.sop_uid)
                if progress is not None:
                    progress(number + 1, len(instances))
        except (OSError, ProtocolError, upper_layer.PeerClosed) as exc:
            raise RemoteUnavailable(
                f'C-STORE to AET "{remote.ae_title}" lost its association: {exc}'
            ) from exc
        finally:
            sender.close()
        log.info("C-STORE to %s: %d sent, %d failed", remote.ae_title, sent, len(failed))
        return StoreOutcome(sent, len(failed), tuple(failed))

    def find(self, remote: RemoteModality, identifier: Dataset) -> list[Dataset]:
        """C-FIND; the pending identifiers, as received."""
        patient = str(identifier.get("QueryRetrieveLevel", "")) == "PATIENT"
        model = (
            PatientRootQueryRetrieveInformationModelFind
            if patient
            else StudyRootQueryRetrieveInformationModelFind
        )
        answers: list[Dataset] = []
        with self._association(remote, [model]) as assoc:
            for status, found in assoc.send_c_find(identifier, model):
                code = int(status.Status) if "Status" in status else None
                if code in _PENDING and found is not None:
                    answers.append(found)
                elif code is None:
                    raise RemoteUnavailable(
                        f'C-FIND SCU to AET "{remote.ae_title}": the association was lost'
                    )
                elif code != 0x0000:
                    raise RemoteFailure(
                        f'C-FIND SCU to AET "{remote.ae_title}" has failed with DIMSE status '
                        f"0x{code:04X}"
                    )
        return answers

    def move(
        self,
        remote: RemoteModality,
        identifier: Dataset,
        target_aet: str,
        progress: Progress | None = None,
    ) -> MoveOutcome:
        """C-MOVE to ``target_aet``; RemoteFailure when the final status is a failure."""
        patient = str(identifier.get("QueryRetrieveLevel", "")) == "PATIENT"
        model = (
            PatientRootQueryRetrieveInformationModelMove
            if patient
            else StudyRootQueryRetrieveInformationModelMove
        )
        with self._association(remote, [model]) as assoc:
            responses = assoc.send_c_move(identifier, target_aet, model)
            final = _final_status(responses, remote, "C-MOVE", progress)
        return self._outcome(remote, "C-MOVE", final)

    def get(
        self, remote: RemoteModality, identifier: Dataset, progress: Progress | None = None
    ) -> MoveOutcome:
        """C-GET: the remote sends the instances back over our association (we take the
        SCP role for every storage SOP class); each is stored through ``Archive.store``."""
        patient = str(identifier.get("QueryRetrieveLevel", "")) == "PATIENT"
        model = (
            PatientRootQueryRetrieveInformationModelGet
            if patient
            else StudyRootQueryRetrieveInformationModelGet
        )
        storage = [str(c.abstract_syntax) for c in StoragePresentationContexts[: MAX_CONTEXTS - 1]]
        roles = [build_role(uid, scp_role=True) for uid in storage]
        origin = f"DIMSE:{remote.ae_title}"

        def on_store(event: Any) -> int:
            try:
                self.archive.store(bytes(event.encoded_dataset()), origin)
            except Exception as exc:  # refused, full, unreadable: the remote counts a failure
                log.warning("C-GET from %s: an instance was not stored: %s", remote.ae_title, exc)
                return 0xA700 if isinstance(exc, OutOfResources) else 0xC000
            return 0x0000

        handlers = [(evt.EVT_C_STORE, on_store)]
        with self._association(
            remote, [model, *storage], ext_neg=roles, evt_handlers=handlers
        ) as assoc:
            final = _final_status(assoc.send_c_get(identifier, model), remote, "C-GET", progress)
        return self._outcome(remote, "C-GET", final)

    @staticmethod
    def _outcome(remote: RemoteModality, service: str, final: Dataset) -> MoveOutcome:
        """The counts of a C-MOVE or C-GET; RemoteFailure for a failure status."""
        code = int(final.Status)
        outcome = MoveOutcome(
            completed=int(final.get("NumberOfCompletedSuboperations", 0) or 0),
            failed=int(final.get("NumberOfFailedSuboperations", 0) or 0),
            warning=int(final.get("NumberOfWarningSuboperations", 0) or 0),
            status=code,
        )
        if code not in (0x0000, 0xB000):
            raise RemoteFailure(
                f'{service} SCU to AET "{remote.ae_title}" has failed with DIMSE status '
                f"0x{code:04X}"
            )
        return outcome


def _final_status(
    responses: Iterable[tuple[Dataset, Any]],
    remote: RemoteModality,
    service: str,
    progress: Progress | None,
) -> Dataset:
    """Follow a C-MOVE or C-GET's responses, reporting pending counts to ``progress``;
    the final status (RemoteUnavailable when the association is lost before it)."""
    final: Dataset | None = None
    for status, _ in responses:
        if "Status" not in status:
            final = None
            break
        final = status
        if int(status.Status) in _PENDING and progress is not None:
            done = int(status.get("NumberOfCompletedSuboperations", 0))
            left = int(status.get("NumberOfRemainingSuboperations", 0))
            progress(done, done + left)
    if final is None:
        raise RemoteUnavailable(
            f'{service} SCU to AET "{remote.ae_title}": the association was lost'
        )
    return final
