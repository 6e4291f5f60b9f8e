"""Runtime settings over REST (/tools/default-encoding, accepted-transfer-syntaxes,
unknown-sop-class-accepted, log-level): Orthanc's answers, and their effect on the DICOM
listener of every server process (two DIMSE processes here)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests.conftest import RunningServer, wait_for_port
from tests.e2e.helpers import association, serve

PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.10.1137.99.1"
ASSOCIATIONS = 8  # with two processes on the port, both are reached (1 - 2**-7)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory, "runtime", dimse_options="workers = 2") as server:
        wait_for_port(server.http_port, process=server.process)
        yield server


def _url(node: RunningServer, path: str) -> str:
    return f"http://127.0.0.1:{node.http_port}/tools/{path}"


def _put(node: RunningServer, path: str, body: str) -> requests.Response:
    return requests.put(_url(node, path), data=body.encode(), timeout=10)


def _accepted(node: RunningServer, sop_class: str, syntax: str) -> list[bool]:
    """Whether each of several associations accepted a storage context."""
    time.sleep(1.2)  # other processes re-read the settings at most once a second
    answers = []
    for _ in range(ASSOCIATIONS):
        with association(node.dimse_port, [(sop_class, [syntax])]) as assoc:
            answers.append(any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts))
    return answers


def test_default_encoding(node: RunningServer) -> None:
    assert requests.get(_url(node, "default-encoding"), timeout=10).text == "Latin1"
    answer = _put(node, "default-encoding", "Utf8")
    assert (answer.status_code, answer.text) == (200, "Utf8")
    assert requests.get(_url(node, "default-encoding"), timeout=10).text == "Utf8"
    bad = _put(node, "default-encoding", "Klingon")
    assert bad.status_code == 400
    assert bad.json()["OrthancStatus"] == 3
    _put(node, "default-encoding", "Latin1")


def test_accepted_transfer_syntaxes_reach_every_dimse_process(node: RunningServer) -> None:
    every = requests.get(_url(node, "accepted-transfer-syntaxes"), timeout=10).json()
    assert str(ExplicitVRLittleEndian) in every and len(every) > 20
    assert all(_accepted(node, CTImageStorage, ExplicitVRLittleEndian))
    jpeg = _put(node, "accepted-transfer-syntaxes", "1.2.840.10008.1.2.4.*").json()
    assert jpeg and all(uid.startswith("1.2.840.10008.1.2.4.") for uid in jpeg)
    answer = _put(node, "accepted-transfer-syntaxes", f'["{ImplicitVRLittleEndian}"]')
    assert answer.json() == [str(ImplicitVRLittleEndian)]
    assert requests.get(_url(node, "accepted-transfer-syntaxes")).json() == [
        str(ImplicitVRLittleEndian)
    ]
    assert not any(_accepted(node, CTImageStorage, ExplicitVRLittleEndian))
    assert all(_accepted(node, CTImageStorage, ImplicitVRLittleEndian))
    for bad in ("1.2.3.4", "9.9.*", '{"a": 1}'):
        assert _put(node, "accepted-transfer-syntaxes", bad).status_code == 400
    _put(node, "accepted-transfer-syntaxes", "*")
    assert all(_accepted(node, CTImageStorage, ExplicitVRLittleEndian))


def test_unknown_sop_class_accepted(node: RunningServer) -> None:
    assert requests.get(_url(node, "unknown-sop-class-accepted"), timeout=10).text == "1"
    assert all(_accepted(node, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian))
    answer = _put(node, "unknown-sop-class-accepted", "0")
    assert (answer.status_code, answer.text) == (200, "")
    assert requests.get(_url(node, "unknown-sop-class-accepted"), timeout=10).text == "0"
    assert not any(_accepted(node, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian))
    assert all(_accepted(node, CTImageStorage, ExplicitVRLittleEndian))  # a known one
    assert _put(node, "unknown-sop-class-accepted", "maybe").status_code == 400
    _put(node, "unknown-sop-class-accepted", "true")
    assert all(_accepted(node, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian))


def _debug_pids(node: RunningServer) -> set[str]:
    return set(re.findall(r" DEBUG pacs\.\S+ \[(\d+)\]", node.log_text()))


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Whether ``check`` holds within ``timeout`` s (settings reach other processes within
    about a second; a loaded machine can take longer)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_log_level_changes_logging_in_every_process(node: RunningServer) -> None:
    assert requests.get(_url(node, "log-level"), timeout=10).text == "default"
    _accepted(node, CTImageStorage, ExplicitVRLittleEndian)
    assert _debug_pids(node) == set()
    answer = _put(node, "log-level", "verbose")
    assert (answer.status_code, answer.text) == (200, "")
    assert requests.get(_url(node, "log-level"), timeout=10).text == "verbose"
    # the HTTP process and the second DIMSE process both log DEBUG lines
    assert _eventually(
        lambda: (
            bool(_accepted(node, CTImageStorage, ExplicitVRLittleEndian))
            and len(_debug_pids(node)) == 2
        )
    ), _debug_pids(node)
    assert _put(node, "log-level", "loud").status_code == 400
    _put(node, "log-level", "default")

    def quiet() -> bool:
        before = node.log_text().count(" DEBUG ")
        _accepted(node, CTImageStorage, ExplicitVRLittleEndian)
        return node.log_text().count(" DEBUG ") == before

    assert _eventually(quiet)
