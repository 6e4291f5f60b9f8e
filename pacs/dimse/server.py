"""Building and running the pynetdicom Application Entity that serves the Archive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    _config,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    PatientStudyOnlyQueryRetrieveInformationModelFind,
    PatientStudyOnlyQueryRetrieveInformationModelGet,
    PatientStudyOnlyQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pacs.core.archive import Archive
from pacs.core.index.modalities import ModalityRegistry
from pacs.dimse.fast_acceptor import FastAcceptor
from pacs.dimse.handlers import DimseHandlers
from pacs.dimse.retrieve_service import RetrieveService
from pacs.dimse.transport import ReusePortAssociationServer
from pacs.settings import Settings

log = logging.getLogger("pacs.dimse")

_QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    PatientStudyOnlyQueryRetrieveInformationModelFind,
    PatientStudyOnlyQueryRetrieveInformationModelMove,
    PatientStudyOnlyQueryRetrieveInformationModelGet,
)


def build_ae(settings: Settings) -> AE:
    """The Application Entity with every service, context and limit from the settings."""
    dimse = settings.dimse
    # Store what modalities send, whatever the SOP class (private ones included).
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    ae = AE(ae_title=dimse.ae_title)
    ae.maximum_pdu_size = dimse.max_pdu_size
    ae.maximum_associations = dimse.max_associations
    ae.network_timeout = dimse.network_timeout
    ae.acse_timeout = dimse.acse_timeout
    ae.dimse_timeout = dimse.dimse_timeout
    ae.require_called_aet = dimse.require_called_ae_title
    if not dimse.accept_unknown_callers:
        ae.require_calling_aet = [m.ae_title for m in settings.modalities]  # see KnownCallers
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for sop_class in _QUERY_RETRIEVE:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES[:4])
    # Storage contexts are needed for SCP/SCU role selection of C-GET sub-operations.
    for context in AllStoragePresentationContexts:
        assert context.abstract_syntax is not None
        ae.add_supported_context(
            context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    # Contexts we propose when sending (C-MOVE sub-operations use their own list).
    ae.add_requested_context(Verification)
    return ae


class KnownCallers(list[str]):
    """The AE titles allowed to call, read from the modality registry each time pynetdicom
    checks (so modalities added over REST are admitted without a restart). Never empty to
    pynetdicom's truth test: with no modality known, every caller is refused (as on the fast
    path)."""

    def __init__(self, registry: ModalityRegistry) -> None:
        super().__init__()
        self.registry = registry

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.ae_titles())

    def __bool__(self) -> bool:
        return True


class DimseServer:
    """The DICOM listener: one pynetdicom server thread pool over the Archive."""

    def __init__(self, archive: Archive, settings: Settings) -> None:
        self.settings = settings
        self.ae = build_ae(settings)
        self.handlers = DimseHandlers(archive, settings)
        if not settings.dimse.accept_unknown_callers:
            self.ae._require_calling_aet = KnownCallers(archive.modalities)
        self._server: ReusePortAssociationServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        if self._server is None:
            return self.settings.dimse.port
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a background thread."""
        dimse = self.settings.dimse
        server = self.ae.make_server(
            (dimse.host, dimse.port),
            evt_handlers=self.handlers.handlers(),
            server_class=ReusePortAssociationServer,
        )
        assert isinstance(server, ReusePortAssociationServer)
        if dimse.fast_store:
            server.fast_path = FastAcceptor(
                self.settings,
                self.handlers.store_service,
                self.handlers.find_service,
                RetrieveService(self.handlers.archive, self.settings),
            )
        self._server = server
        self.ae._servers.append(server)  # so that AE.shutdown() stops it, as start_server does
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="dimse-listener",
            daemon=True,
        )
        self._thread.start()
        log.info("DICOM listener %s on %s:%d", dimse.ae_title, dimse.host, self.port)

    def stop(self) -> None:
        """Stop accepting, close the listener and open associations, wait for the thread."""
        self.ae.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
