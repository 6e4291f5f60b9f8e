"""Nothing acknowledged is lost: SIGKILL the server in the middle of a multi-association ingest."""

from __future__ import annotations

import hashlib
import signal
import socket
import threading
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind

from pacs.core.archive import Archive
from pacs.core.model import Level
from pacs.core.query import Query
from storage import FileSystemBlobStore
from tests.conftest import start_server
from tests.factories import make_image, new_uid

ASSOCIATIONS = 4
PER_ASSOCIATION = 400


def _sender(
    port: int, datasets: list[Dataset], acknowledged: dict[str, bytes], lock: threading.Lock
) -> None:
    ae = AE(ae_title="CRASHTEST")
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 5
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port)
    if not assoc.is_established:
        return
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not assoc.is_established:
                return
            if status and status.Status == 0x0000:
                with lock:
                    acknowledged[str(ds.SOPInstanceUID)] = hashlib.sha256(ds.PixelData).digest()
    except Exception:
        return  # the server died under us: expected
    finally:
        if assoc.is_established:
            assoc.abort()


@pytest.mark.slow
def test_acknowledged_instances_survive_sigkill(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    study = new_uid()
    batches = [
        [
            make_image(study_uid=study, series_uid=series, instance_number=n, rows=64, columns=64)
            for n in range(PER_ASSOCIATION)
        ]
        for series in (new_uid() for _ in range(ASSOCIATIONS))
    ]
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_sender, args=(server.dimse_port, batch, acknowledged, lock))
        for batch in batches
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.stop()
    sent_total = ASSOCIATIONS * PER_ASSOCIATION
    assert 150 <= len(acknowledged) < sent_total, "the kill must land mid-ingest"

    # Restart on the same data: every acknowledged instance is findable over DICOM.
    restarted = start_server(tmp_path, name="restarted", data_dir=server.data_dir)
    try:
        ae = AE(ae_title="CHECK")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate("127.0.0.1", restarted.dimse_port)
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = study
        identifier.SOPInstanceUID = ""
        found = {
            str(answer.SOPInstanceUID)
            for status, answer in assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind
            )
            if status and status.Status == 0xFF00
        }
        assoc.release()
        assert set(acknowledged) <= found
    finally:
        restarted.stop()

    # Every indexed instance is complete and intact; no partial file is left.
    archive = Archive.open(
        f"sqlite:///{server.data_dir / 'index.sqlite'}",
        FileSystemBlobStore(server.data_dir / "blobs"),
    )
    try:
        indexed = archive.instances_matching(
            Query(level=Level.STUDY, filters={"StudyInstanceUID": study})
        )
        for stored in indexed:
            content = archive.read_instance(stored)
            assert hashlib.sha256(content).hexdigest() == stored.sha256
            if stored.sop_uid in acknowledged:
                pixels = dcmread(BytesIO(content)).PixelData
                assert hashlib.sha256(pixels).digest() == acknowledged[stored.sop_uid]
    finally:
        archive.close()
    assert list((server.data_dir / "blobs").rglob("*.partial")) == []
