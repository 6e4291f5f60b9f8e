"""Socket tuning for pynetdicom: TCP_NODELAY on every DICOM socket, SO_REUSEPORT listeners.

Without TCP_NODELAY each small DIMSE response waits ~40 ms for a delayed ACK; with
SO_REUSEPORT several server processes share the DICOM port and the kernel spreads the
incoming associations over them.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any, Protocol

from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)


def set_nodelay(assoc: Any) -> None:
    """Disable Nagle's algorithm on the association's TCP socket (if it has one yet)."""
    sock = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:  # e.g. the peer already closed
        log.debug("cannot set TCP_NODELAY: %s", exc)


class ConnectionHandler(Protocol):
    """Something that may serve an accepted connection instead of pynetdicom."""

    def handle(self, sock: socket.socket, address: Any) -> bool: ...


class ReusePortAssociationServer(ThreadedAssociationServer):
    """A threaded association server whose listening socket can be shared by processes.

    When ``fast_path`` is set, each accepted connection is offered to it first (in the
    connection's own thread); connections it declines go to pynetdicom untouched.
    """

    fast_path: ConnectionHandler | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.fast_path is not None and self.fast_path.handle(request, client_address):
            return
        super().finish_request(request, client_address)

    def server_bind(self) -> None:
        if self.socket is not None and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, Any]:
        client, address = super().get_request()
        with contextlib.suppress(OSError):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address
