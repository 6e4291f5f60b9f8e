"""Vietnamese and Latin-1 patient names, and a citizen ID, through C-STORE and C-FIND."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from tests.conftest import RunningServer
from tests.e2e.helpers import (
    PATIENT_ROOT_FIND,
    find,
    findscu,
    query,
    require_dcmtk,
    serve,
    store,
)
from tests.factories import make_image

VAN = "Nguyễn^Văn A"
BICH = "Nguyễn^Thị Bích"
MULLER = "Müller^Jürgen"
CITIZEN_ID = "079203001234"  # 12-digit Vietnamese citizen identity number
ISSUER = "VN-CCCD"

CLIENTS = ["pynetdicom", pytest.param("findscu", marks=pytest.mark.integration)]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server holding the three patients."""
    with serve(tmp_path_factory, "charset") as running:
        statuses = store(
            running.dimse_port,
            [
                make_image(
                    charset="ISO_IR 192",
                    patient_name=VAN,
                    patient_id=CITIZEN_ID,
                    IssuerOfPatientID=ISSUER,
                ),
                make_image(charset="ISO_IR 192", patient_name=BICH, patient_id="079203009999"),
                make_image(charset="ISO_IR 100", patient_name=MULLER, patient_id="DE-4711"),
            ],
        )
        assert statuses == [0, 0, 0]
        yield running


def _patients(client: str, node: RunningServer, keys: dict[str, str], out: Path) -> list[Dataset]:
    """PATIENT-level answers (Patient Root) from the given client, decoded by pydicom."""
    keys = {
        "QueryRetrieveLevel": "PATIENT",
        "PatientName": "",
        "PatientID": "",
        "IssuerOfPatientID": "",
        **keys,
    }
    if client == "findscu":
        tool = require_dcmtk("findscu")["findscu"]
        result, answers = findscu(tool, node.dimse_port, keys, out, model="-P")
        assert result.returncode == 0, result.stderr
        return answers
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    status, answers = find(node.dimse_port, identifier, PATIENT_ROOT_FIND)
    assert status == 0
    return answers


def _names(answers: list[Dataset]) -> set[str]:
    return {str(a.PatientName) for a in answers}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("nguyen^van*", {VAN}),
        ("NGUYEN*", {VAN, BICH}),
        ("Nguyễn*", {VAN, BICH}),
        ("Nguyễn^Văn A", {VAN}),
        ("*bich", {BICH}),
        ("muller*", {MULLER}),
        ("Müller^Jürgen", {MULLER}),
    ],
)
def test_name_search_is_accent_and_case_insensitive(
    node: RunningServer, tmp_path: Path, client: str, pattern: str, expected: set[str]
) -> None:
    """Folded matching finds the names; the answer carries each name intact."""
    keys = {"PatientName": pattern}
    if not pattern.isascii():
        keys["SpecificCharacterSet"] = "ISO_IR 192"
    answers = _patients(client, node, keys, tmp_path)
    assert _names(answers) == expected


@pytest.mark.parametrize("client", CLIENTS)
def test_citizen_id_and_issuer_returned(node: RunningServer, tmp_path: Path, client: str) -> None:
    """A 12-digit PatientID matches exactly, with its IssuerOfPatientID and name intact."""
    answers = _patients(client, node, {"PatientID": CITIZEN_ID}, tmp_path)
    assert len(answers) == 1
    answer = answers[0]
    assert answer.PatientID == CITIZEN_ID
    assert answer.IssuerOfPatientID == ISSUER
    assert str(answer.PatientName) == VAN
    assert _patients(client, node, {"PatientID": CITIZEN_ID[:-1]}, tmp_path / "b") == []


@pytest.mark.parametrize("client", CLIENTS)
def test_latin1_name_returned_intact(node: RunningServer, tmp_path: Path, client: str) -> None:
    """A name stored as ISO_IR 100 comes back as the same characters."""
    answers = _patients(client, node, {"PatientID": "DE-4711"}, tmp_path)
    assert _names(answers) == {MULLER}


def test_study_level_answer_decodes(node: RunningServer) -> None:
    """STUDY-level answers for the Vietnamese patient declare a charset that decodes the name."""
    status, answers = find(
        node.dimse_port, query("STUDY", PatientName="nguyen*", StudyInstanceUID="", PatientID="")
    )
    assert status == 0
    assert {str(a.PatientName) for a in answers} == {VAN, BICH}
    for answer in answers:
        assert "ISO_IR 192" in (answer.get("SpecificCharacterSet") or "")
