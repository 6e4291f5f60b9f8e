"""The DICOM node against DCMTK's own clients: echoscu, storescu, findscu, movescu, getscu."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from tests.conftest import RunningServer, free_port, wait_for_port
from tests.e2e.helpers import (
    HOST,
    SERVER_AE,
    STUDY_ROOT_FIND,
    dataset_bytes,
    final_counts,
    find,
    findscu,
    getscu_command,
    modality_config,
    query,
    require_dcmtk,
    run,
    serve,
    study_keys,
)
from tests.factories import make_image, make_radiograph, make_series, new_uid, write

pytestmark = pytest.mark.integration

DEST_AE = "E2E-DEST"
TOOLS = ("echoscu", "storescu", "findscu", "movescu", "getscu", "storescp")


@dataclass
class Catalog:
    """What the module stored with storescu, and how storescu went."""

    folder: Path
    p1_study1: str  # CT series (3) + CR series (1), 2023-03-10
    p1_study2: str  # one CR, 2024-06-20
    p2_study: str  # one RLE-compressed CT, 2022-01-01
    ct_series: str
    cr_series: str
    files: dict[str, Path]  # SOP Instance UID -> the file sent
    store_output: str
    store_rc: int


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """The DCMTK programs (the module skips without them)."""
    return require_dcmtk(*TOOLS)


@pytest.fixture(scope="module")
def dest_port() -> int:
    """The port of the storescp that C-MOVE sends to."""
    return free_port()


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str], dest_port: int
) -> Iterator[RunningServer]:
    """One server for the module, knowing the storescp destination."""
    with serve(tmp_path_factory, "dcmtk", modality_config("dest", DEST_AE, dest_port)) as running:
        yield running


def _files(folder: Path, datasets: list[Dataset]) -> dict[str, Path]:
    return {str(ds.SOPInstanceUID): write(ds, folder) for ds in datasets}


@pytest.fixture(scope="module")
def catalog(
    node: RunningServer, tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Catalog:
    """Two patients, three studies, sent with storescu (the RLE file with ``-xr``)."""
    folder = tmp_path_factory.mktemp("sent")
    s1, s2, s3 = new_uid(), new_uid(), new_uid()
    ct_series, cr_series = new_uid(), new_uid()
    common = {"patient_id": "E2E-P1", "patient_name": "Smith^Anna"}
    ct = make_series(3, study_uid=s1, series_uid=ct_series, study_date="20230310", **common)
    cr1 = make_radiograph(
        study_uid=s1, series_uid=cr_series, series_number=2, study_date="20230310", **common
    )
    cr2 = make_radiograph(study_uid=s2, study_date="20240620", accession="ACC002", **common)
    rle = make_image(
        patient_id="E2E-P2",
        patient_name="Jones^Bob",
        study_uid=s3,
        study_date="20220101",
        accession="ACC003",
        rows=32,
        columns=24,
    )
    rle.compress(RLELossless, generate_instance_uid=False)
    plain = _files(folder / "plain", [*ct, cr1, cr2])
    compressed = _files(folder / "rle", [rle])
    base = [tools["storescu"], "-v", "-aet", "E2E-STORESCU", "-aec", SERVER_AE, "-to", "20"]
    first = run([*base, HOST, str(node.dimse_port), *map(str, plain.values())])
    second = run([*base, "-xr", HOST, str(node.dimse_port), *map(str, compressed.values())])
    return Catalog(
        folder=folder,
        p1_study1=s1,
        p1_study2=s2,
        p2_study=s3,
        ct_series=ct_series,
        cr_series=cr_series,
        files={**plain, **compressed},
        store_output=first.stdout + first.stderr + second.stdout + second.stderr,
        store_rc=first.returncode or second.returncode,
    )


def test_echoscu(node: RunningServer, tools: dict[str, str]) -> None:
    """C-ECHO from DCMTK's echoscu succeeds."""
    result = run(
        [tools["echoscu"], "-v", "-aec", SERVER_AE, "-to", "10", HOST, str(node.dimse_port)]
    )
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response (Success)" in result.stderr


def test_storescu_stores_every_file(catalog: Catalog) -> None:
    """storescu gets Success for all six files (five uncompressed, one RLE)."""
    assert catalog.store_rc == 0, catalog.store_output
    assert catalog.store_output.count("Received Store Response (Success)") == 6, (
        catalog.store_output
    )


@pytest.mark.parametrize("which", ["p1_study1", "p1_study2", "p2_study"])
def test_getscu_returns_the_bytes_sent(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path, which: str
) -> None:
    """What getscu retrieves has exactly the data set bytes storescu sent (RLE kept)."""
    study = getattr(catalog, which)
    out = tmp_path / "got"
    out.mkdir()
    args = getscu_command(tools["getscu"], out, "+B", *study_keys(study))
    if which == "p2_study":
        args.append("+xr")
    result = run([*args, HOST, str(node.dimse_port)])
    assert result.returncode == 0, result.stderr[-3000:]
    received = {path.name: path for path in out.iterdir()}
    expected = {uid: path for uid, path in catalog.files.items() if _study_of(path) == study}
    assert set(received) == set(expected)
    for uid, path in expected.items():
        assert dataset_bytes(received[uid]) == dataset_bytes(path), f"{uid} differs"
    assert final_counts(result.stdout + result.stderr).get("Completed") == len(expected)


def _study_of(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_findscu_patient_level(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Patient Root, PATIENT level: universal matching lists both patients with counts."""
    result, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "PATIENT",
            "PatientID": "",
            "PatientName": "",
            "NumberOfPatientRelatedStudies": "",
        },
        tmp_path,
        model="-P",
    )
    assert result.returncode == 0, result.stderr
    by_id = {str(a.PatientID): a for a in answers}
    assert set(by_id) == {"E2E-P1", "E2E-P2"}
    assert str(by_id["E2E-P1"].PatientName) == "Smith^Anna"
    assert int(by_id["E2E-P1"].NumberOfPatientRelatedStudies) == 2
    assert int(by_id["E2E-P2"].NumberOfPatientRelatedStudies) == 1


def test_findscu_patient_level_with_wildcard(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Patient Root, PATIENT level: a wildcard on PatientName selects one patient."""
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {"QueryRetrieveLevel": "PATIENT", "PatientName": "Jon*", "PatientID": ""},
        tmp_path,
        model="-P",
    )
    assert [str(a.PatientID) for a in answers] == ["E2E-P2"]


def test_findscu_study_level_wildcard_and_counts(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, STUDY level: wildcard name, computed counts and ModalitiesInStudy."""
    result, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "STUDY",
            "PatientName": "Smi*",
            "StudyInstanceUID": "",
            "StudyDate": "",
            "NumberOfStudyRelatedInstances": "",
            "NumberOfStudyRelatedSeries": "",
            "ModalitiesInStudy": "",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    by_uid = {str(a.StudyInstanceUID): a for a in answers}
    assert set(by_uid) == {catalog.p1_study1, catalog.p1_study2}
    first = by_uid[catalog.p1_study1]
    assert int(first.NumberOfStudyRelatedInstances) == 4
    assert int(first.NumberOfStudyRelatedSeries) == 2
    assert sorted(first.get("ModalitiesInStudy") or []) == ["CR", "CT"]
    assert first.StudyDate == "20230310"
    second = by_uid[catalog.p1_study2]
    assert int(second.NumberOfStudyRelatedInstances) == 1
    assert int(second.NumberOfStudyRelatedSeries) == 1
    assert second.ModalitiesInStudy == "CR"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("20230101-20231231", {"p1_study1"}),
        ("20230310", {"p1_study1"}),
        ("20240101-", {"p1_study2"}),
        ("-20230310", {"p1_study1", "p2_study"}),
        ("20250101-", set()),
    ],
)
def test_findscu_study_date_range(
    catalog: Catalog,
    node: RunningServer,
    tools: dict[str, str],
    tmp_path: Path,
    date: str,
    expected: set[str],
) -> None:
    """Study Root, STUDY level: single dates and closed / open date ranges."""
    result, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {"QueryRetrieveLevel": "STUDY", "StudyDate": date, "StudyInstanceUID": ""},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert {str(a.StudyInstanceUID) for a in answers} == {
        getattr(catalog, name) for name in expected
    }


def test_findscu_study_uid_list(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, STUDY level: a backslash-separated UID list matches each listed study."""
    wanted = f"{catalog.p1_study1}\\{catalog.p2_study}\\1.2.3.999"
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": wanted, "PatientID": ""},
        tmp_path,
    )
    assert {str(a.StudyInstanceUID): str(a.PatientID) for a in answers} == {
        catalog.p1_study1: "E2E-P1",
        catalog.p2_study: "E2E-P2",
    }


def test_findscu_study_universal_matching(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, STUDY level with only return keys: every study, values filled in."""
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "STUDY",
            "StudyInstanceUID": "",
            "PatientID": "",
            "AccessionNumber": "",
            "StudyDescription": "",
        },
        tmp_path,
    )
    accessions = {str(a.StudyInstanceUID): str(a.AccessionNumber) for a in answers}
    assert accessions == {
        catalog.p1_study1: "ACC001",
        catalog.p1_study2: "ACC002",
        catalog.p2_study: "ACC003",
    }
    assert all(a.PatientID for a in answers)


def test_findscu_series_level(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, SERIES level: the study's two series with NumberOfSeriesRelatedInstances."""
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": catalog.p1_study1,
            "SeriesInstanceUID": "",
            "Modality": "",
            "NumberOfSeriesRelatedInstances": "",
        },
        tmp_path,
    )
    got = {
        str(a.SeriesInstanceUID): (a.Modality, int(a.NumberOfSeriesRelatedInstances))
        for a in answers
    }
    assert got == {catalog.ct_series: ("CT", 3), catalog.cr_series: ("CR", 1)}


def test_findscu_series_modality_list(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, SERIES level: Modality 'CR\\MR' matches only the CR series."""
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": catalog.p1_study1,
            "SeriesInstanceUID": "",
            "Modality": "CR\\MR",
        },
        tmp_path,
    )
    assert [str(a.SeriesInstanceUID) for a in answers] == [catalog.cr_series]


def test_findscu_image_level(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """Study Root, IMAGE level: the CT series' three instances with their numbers."""
    _, answers = findscu(
        tools["findscu"],
        node.dimse_port,
        {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": catalog.p1_study1,
            "SeriesInstanceUID": catalog.ct_series,
            "SOPInstanceUID": "",
            "InstanceNumber": "",
            "SOPClassUID": "",
        },
        tmp_path,
    )
    assert sorted(int(a.InstanceNumber) for a in answers) == [1, 2, 3]
    ct_files = {uid for uid, path in catalog.files.items() if "plain" in path.parts}
    assert {str(a.SOPInstanceUID) for a in answers} <= ct_files
    assert {str(a.SOPClassUID) for a in answers} == {"1.2.840.10008.5.1.4.1.1.2"}


def test_study_root_patient_level_is_refused(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """PATIENT is not a level of the Study Root model: 0xA900 and no match."""
    status, answers = find(node.dimse_port, query("PATIENT", PatientID=""), STUDY_ROOT_FIND)
    assert status == 0xA900
    assert answers == []
    result, files = findscu(
        tools["findscu"],
        node.dimse_port,
        {"QueryRetrieveLevel": "PATIENT", "PatientID": ""},
        tmp_path,
    )
    assert files == []
    assert "DataSetDoesNotMatchSOPClass" in result.stderr


def _storescp(tools: dict[str, str], port: int, out: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [tools["storescp"], "-aet", DEST_AE, "+xa", "-od", str(out), "-ta", "20", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=10, process=process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_movescu_to_storescp(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path, dest_port: int
) -> None:
    """C-MOVE of a study to a configured storescp: all four arrive, final Success 4/0/0."""
    out = tmp_path / "dest"
    out.mkdir()
    receiver = _storescp(tools, dest_port, out)
    try:
        result = run(
            [
                tools["movescu"],
                "-d",
                "-S",
                "-aet",
                "E2E-MOVESCU",
                "-aec",
                SERVER_AE,
                "-aem",
                DEST_AE,
                "-to",
                "20",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={catalog.p1_study1}",
                HOST,
                str(node.dimse_port),
            ]
        )
    finally:
        _stop(receiver)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    arrived = {path.name.split(".", 1)[1] for path in out.iterdir()}
    expected = {uid for uid, path in catalog.files.items() if _study_of(path) == catalog.p1_study1}
    assert arrived == expected
    assert "0x0000: Success" in text[text.rfind("Final Move Response") :]
    assert final_counts(text) == {"Remaining": 0, "Completed": 4, "Failed": 0, "Warning": 0}


def test_movescu_unknown_destination(
    catalog: Catalog, node: RunningServer, tools: dict[str, str]
) -> None:
    """C-MOVE to an AE title not in [[modalities]]: 0xA801 (move destination unknown)."""
    result = run(
        [
            tools["movescu"],
            "-d",
            "-S",
            "-aet",
            "E2E-MOVESCU",
            "-aec",
            SERVER_AE,
            "-aem",
            "NOWHERE",
            "-to",
            "20",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={catalog.p1_study1}",
            HOST,
            str(node.dimse_port),
        ]
    )
    text = (result.stdout + result.stderr).lower()
    assert "0xa801" in text, text[-3000:]


def test_getscu_series(
    catalog: Catalog, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """C-GET at SERIES level brings back exactly the CT series' three instances."""
    out = tmp_path / "got"
    out.mkdir()
    keys = [
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={catalog.p1_study1}",
        "-k",
        f"SeriesInstanceUID={catalog.ct_series}",
    ]
    result = run([*getscu_command(tools["getscu"], out, *keys), HOST, str(node.dimse_port)])
    assert result.returncode == 0, result.stderr[-3000:]
    got = [dcmread(path) for path in out.iterdir()]
    assert len(got) == 3
    assert {str(ds.SeriesInstanceUID) for ds in got} == {catalog.ct_series}
    assert sorted(int(ds.InstanceNumber) for ds in got) == [1, 2, 3]
    counts = final_counts(result.stdout + result.stderr)
    assert counts == {"Remaining": 0, "Completed": 3, "Failed": 0, "Warning": 0}
