"""The DICOM node driven by pynetdicom as SCU: C-STORE, C-FIND, C-MOVE, C-GET."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from tests.conftest import RunningServer, fresh_postgres_schema
from tests.e2e.helpers import (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    UNCOMPRESSED,
    Receiver,
    assert_alive,
    association,
    blob_of,
    c_get,
    final_and_pending,
    find,
    image_uids,
    modality_config,
    query,
    serve,
    store,
)
from tests.factories import make_image, make_radiograph, make_series, new_uid

MOVE_AE = "E2E-MOVEDEST"


@dataclass
class Node:
    """The module's server and the storage SCP it may move to."""

    server: RunningServer
    receiver: Receiver


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        "sqlite-pynetdicom",
    ],
)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    """A server whose [[modalities]] lists a pynetdicom storage SCP, which is running: on
    the SQLite index, on PostgreSQL, and with every association served by pynetdicom."""
    receiver = Receiver(MOVE_AE)
    extra = modality_config("movedest", MOVE_AE, receiver.port)
    with contextlib.ExitStack() as stack:
        index_url = ""
        if request.param == "postgresql":
            index_url = stack.enter_context(fresh_postgres_schema())
        options = "fast_store = false" if request.param.endswith("pynetdicom") else ""
        server = stack.enter_context(
            serve(
                tmp_path_factory,
                f"scu-{request.param}",
                extra,
                dimse_options=options,
                index_url=index_url,
            )
        )
        stack.enter_context(receiver.running())
        yield Node(server, receiver)


@dataclass
class Study:
    """One stored study: a CT series, and a CR series in the same study."""

    study_uid: str
    ct_series: str
    cr_series: str
    datasets: dict[str, Dataset]


def _store_study(port: int, patient_id: str) -> Study:
    study_uid, ct_series, cr_series = new_uid(), new_uid(), new_uid()
    ct = make_series(3, study_uid=study_uid, series_uid=ct_series, patient_id=patient_id)
    cr = make_radiograph(
        study_uid=study_uid,
        series_uid=cr_series,
        series_number=2,
        patient_id=patient_id,
        rows=20,
        columns=10,
    )
    assert store(port, [*ct, cr]) == [0, 0, 0, 0]
    return Study(study_uid, ct_series, cr_series, {str(d.SOPInstanceUID): d for d in [*ct, cr]})


def test_c_store_and_find_at_each_level(node: Node) -> None:
    """C-STORE four instances, then C-FIND: pending answers per level with the right values."""
    port = node.server.dimse_port
    study = _store_study(port, "PYN-FIND")
    status, patients = find(
        port,
        query("PATIENT", PatientID="PYN-FIND", NumberOfPatientRelatedInstances=""),
        PATIENT_ROOT_FIND,
    )
    assert status == 0
    assert len(patients) == 1
    assert int(patients[0].NumberOfPatientRelatedInstances) == 4
    status, studies = find(
        port,
        query(
            "STUDY",
            PatientID="PYN-FIND",
            StudyInstanceUID="",
            ModalitiesInStudy="",
            NumberOfStudyRelatedInstances="",
        ),
    )
    assert status == 0
    assert [str(s.StudyInstanceUID) for s in studies] == [study.study_uid]
    assert sorted(studies[0].ModalitiesInStudy) == ["CR", "CT"]
    status, series = find(
        port,
        query(
            "SERIES",
            StudyInstanceUID=study.study_uid,
            SeriesInstanceUID="",
            NumberOfSeriesRelatedInstances="",
        ),
    )
    assert status == 0
    assert {str(s.SeriesInstanceUID): int(s.NumberOfSeriesRelatedInstances) for s in series} == {
        study.ct_series: 3,
        study.cr_series: 1,
    }
    assert image_uids(port, StudyInstanceUID=study.study_uid) == set(study.datasets)


def test_c_find_without_level_is_refused(node: Node) -> None:
    """A C-FIND without a QueryRetrieveLevel fails (0xA900 or 0xC000), the node keeps going."""
    port = node.server.dimse_port
    identifier = Dataset()
    identifier.PatientID = "*"
    status, answers = find(port, identifier)
    assert status in (0xA900, 0xC000)
    assert answers == []
    assert_alive(node.server)


def _move(
    port: int, identifier: Dataset, destination: str
) -> tuple[Dataset, Dataset | None, list[Dataset]]:
    with association(port, [(STUDY_ROOT_MOVE, UNCOMPRESSED)]) as assoc:
        return final_and_pending(assoc.send_c_move(identifier, destination, STUDY_ROOT_MOVE))


def test_c_move_study(node: Node) -> None:
    """C-MOVE of a study: every instance arrives unchanged; final Success with 4 completed."""
    port = node.server.dimse_port
    study = _store_study(port, "PYN-MOVE")
    final, _, pending = _move(port, query("STUDY", StudyInstanceUID=study.study_uid), MOVE_AE)
    assert int(final.Status) == 0x0000
    assert final.NumberOfCompletedSuboperations == 4
    assert final.NumberOfFailedSuboperations == 0
    assert final.NumberOfWarningSuboperations == 0
    remaining = [p.NumberOfRemainingSuboperations for p in pending]
    assert remaining in ([3, 2, 1], [3, 2, 1, 0])  # a last pending with 0 is optional
    received = {uid: node.receiver.received.get(uid) for uid in study.datasets}
    assert all(ds is not None for ds in received.values()), "not every instance arrived"
    for uid, sent in study.datasets.items():
        got = received[uid]
        assert got is not None
        assert got.PixelData == sent.PixelData
        assert got.PatientID == "PYN-MOVE"
        assert got.StudyInstanceUID == study.study_uid


def test_c_move_unknown_destination(node: Node) -> None:
    """C-MOVE to an unlisted AE title: 0xA801, nothing sent."""
    port = node.server.dimse_port
    study = _store_study(port, "PYN-MOVE-UNKNOWN")
    final, _, pending = _move(port, query("STUDY", StudyInstanceUID=study.study_uid), "NOBODY")
    assert int(final.Status) == 0xA801
    assert pending == []
    assert not set(study.datasets) & set(node.receiver.received)


def test_c_move_with_a_missing_blob(node: Node) -> None:
    """A series whose one blob was deleted: the others arrive, the final status is Warning
    (or a failure) with that instance in FailedSOPInstanceUIDList."""
    server = node.server
    study = _store_study(server.dimse_port, "PYN-MOVE-MISSING")
    ct_uids = [uid for uid, ds in study.datasets.items() if ds.Modality == "CT"]
    lost = ct_uids[1]
    blob_of(server.data_dir, lost).unlink()
    final, identifier, _ = _move(
        server.dimse_port,
        query("SERIES", StudyInstanceUID=study.study_uid, SeriesInstanceUID=study.ct_series),
        MOVE_AE,
    )
    assert int(final.Status) in (0xB000, 0xA702, 0xC000), f"0x{int(final.Status):04X}"
    assert final.NumberOfFailedSuboperations == 1
    assert final.NumberOfCompletedSuboperations == 2
    assert identifier is not None
    failed = identifier.FailedSOPInstanceUIDList
    failed = [failed] if isinstance(failed, str) else list(failed)
    assert failed == [lost]
    assert set(ct_uids) - {lost} <= set(node.receiver.received)
    assert lost not in node.receiver.received
    assert_alive(server)


def test_c_get_study(node: Node) -> None:
    """C-GET of a study over the same association: four instances, final Success 4/0/0."""
    port = node.server.dimse_port
    study = _store_study(port, "PYN-GET")
    classes = sorted({str(ds.SOPClassUID) for ds in study.datasets.values()})
    final, _, got = c_get(
        port, query("STUDY", StudyInstanceUID=study.study_uid), classes, UNCOMPRESSED
    )
    assert int(final.Status) == 0
    assert final.NumberOfCompletedSuboperations == 4
    assert final.NumberOfFailedSuboperations == 0
    assert set(got) == set(study.datasets)
    for uid, ds in got.items():
        assert ds.PixelData == study.datasets[uid].PixelData


def test_c_get_compressed_instance_keeps_its_syntax(node: Node) -> None:
    """An RLE instance stored by C-STORE comes back by C-GET in RLE, pixel data unchanged."""
    port = node.server.dimse_port
    ds = make_image(patient_id="PYN-RLE", rows=24, columns=40)
    ds.compress(RLELossless, generate_instance_uid=False)
    assert store(port, [ds]) == [0]
    final, _, got = c_get(
        port,
        query(
            "IMAGE",
            StudyInstanceUID=ds.StudyInstanceUID,
            SeriesInstanceUID=ds.SeriesInstanceUID,
            SOPInstanceUID=ds.SOPInstanceUID,
        ),
        [str(ds.SOPClassUID)],
        [str(RLELossless), str(ExplicitVRLittleEndian)],
    )
    assert int(final.Status) == 0
    back = got[str(ds.SOPInstanceUID)]
    assert back.file_meta.TransferSyntaxUID == RLELossless
    assert back.PixelData == ds.PixelData


def test_c_get_without_keys_is_refused(node: Node) -> None:
    """A C-GET with no key value is refused with a failure and the association stays usable."""
    port = node.server.dimse_port
    identifier = query("STUDY", StudyInstanceUID="")
    contexts = [(STUDY_ROOT_GET, UNCOMPRESSED), (STUDY_ROOT_FIND, UNCOMPRESSED)]
    with association(port, contexts) as assoc:
        final, _, _ = final_and_pending(assoc.send_c_get(identifier, STUDY_ROOT_GET))
        status = int(final.Status)
        assert status == 0xA900 or 0xC000 <= status <= 0xCFFF  # identifier / unable to process
        echo = assoc.send_c_echo()
        assert "Status" in echo and int(echo.Status) == 0, "association unusable after refusal"
