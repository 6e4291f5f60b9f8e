"""A slow, picky Storage SCP for tests of C-STORE jobs (progress, refusals, restarts)."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import free_port


class SlowPickyScp:
    """A pynetdicom Storage SCP that takes ``delay`` s per instance and refuses (0xA700) the
    instances whose Instance Number is in ``refuse``."""

    def __init__(self, delay: float, refuse: set[int]) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        self.received: list[str] = []
        self.delay, self.refuse = delay, refuse
        self.port = free_port()
        self.ae = AE(ae_title="PICKY")
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: Any) -> int:
        time.sleep(self.delay)
        ds = event.dataset
        if int(ds.InstanceNumber) in self.refuse:
            return 0xA700
        self.received.append(str(ds.SOPInstanceUID))
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()
        self.ae.shutdown()
