"""``accept_unknown_callers = false``: only AE titles listed in [[modalities]] may associate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.conftest import RunningServer, free_port
from tests.e2e.helpers import (
    HOST,
    SERVER_AE,
    echo_ok,
    make_ae,
    modality_config,
    require_dcmtk,
    run,
    serve,
)

LISTED = "E2E-LISTED"


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that accepts only LISTED as caller."""
    with serve(
        tmp_path_factory,
        "acl",
        modality_config("listed", LISTED, free_port()),
        dimse_options="accept_unknown_callers = false",
    ) as running:
        yield running


def test_unlisted_caller_is_rejected(restricted: RunningServer) -> None:
    """An association from an AE title not in [[modalities]] is rejected, not accepted."""
    ae = make_ae("E2E-STRANGER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, restricted.dimse_port, ae_title=SERVER_AE)
    try:
        assert not assoc.is_established
        assert assoc.is_rejected
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()
    assert restricted.process.poll() is None


def test_listed_caller_is_accepted(restricted: RunningServer) -> None:
    """The AE title listed in [[modalities]] associates and gets C-ECHO Success."""
    assert echo_ok(restricted.dimse_port, ae_title=LISTED)


@pytest.mark.integration
def test_echoscu_calling_ae_title(restricted: RunningServer) -> None:
    """DCMTK echoscu: refused under a stranger's title, accepted under the listed one."""
    echoscu = require_dcmtk("echoscu")["echoscu"]
    base = [echoscu, "-v", "-aec", SERVER_AE, "-to", "10"]
    stranger = run([*base, "-aet", "E2E-STRANGER", HOST, str(restricted.dimse_port)])
    assert stranger.returncode != 0
    assert "Association Rejected" in stranger.stderr
    listed = run([*base, "-aet", LISTED, HOST, str(restricted.dimse_port)])
    assert listed.returncode == 0, listed.stderr
