"""``/anonymize`` and ``/modify`` next to a real Orthanc 1.10.1 on the same study: the same
attributes removed, blanked and replaced, at the top level and inside sequences. Skips where
Orthanc is not installed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import to_bytes
from tests.orthanc_compat.identified import identified_study
from tests.orthanc_compat.real_orthanc import running_orthanc
from tests.orthanc_compat.test_modification import rt_structure_set


@dataclass
class Pair:
    """Both servers and the id of the same study in each (Orthanc's ids are ours)."""

    orthanc: str
    ours: str
    study_id: str
    originals: dict[tuple[int, int], Dataset]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with (
        running_orthanc(tmp_path_factory.mktemp("orthanc-anonymize")) as orthanc,
        serve(tmp_path_factory, "ours-anonymize") as server,
    ):
        wait_for_port(server.http_port, process=server.process)
        ours = f"http://127.0.0.1:{server.http_port}"
        originals = identified_study("CMP001")
        for ds in originals:
            for url in (orthanc, ours):
                answer = requests.post(f"{url}/instances", data=to_bytes(ds), timeout=30)
                assert answer.status_code == 200, answer.text
        yield Pair(orthanc, ours, answer.json()["ParentStudy"], _keyed(originals))


def _keyed(files: list[Dataset]) -> dict[tuple[int, int], Dataset]:
    return {(int(ds.SeriesNumber), int(ds.InstanceNumber)): ds for ds in files}


def _files(url: str, study_id: str) -> dict[tuple[int, int], Dataset]:
    ids = [i["ID"] for i in requests.get(f"{url}/studies/{study_id}/instances", timeout=30).json()]
    return _keyed(
        [
            dcmread(io.BytesIO(requests.get(f"{url}/instances/{i}/file", timeout=30).content))
            for i in ids
        ]
    )


def _diff(before: Dataset, after: Dataset, prefix: str = "") -> dict[str, str]:
    """What happened to each attribute: removed, blanked, changed or (absent) unchanged;
    sequence items compared item by item."""
    result: dict[str, str] = {}
    for elem in before:
        path = f"{prefix}{int(elem.tag):08X}"
        if elem.tag not in after:
            result[path] = "removed"
            continue
        new = after[elem.tag]
        if new.is_empty and not elem.is_empty:
            result[path] = "blanked"
        elif elem.VR == "SQ":
            for index, (old_item, new_item) in enumerate(zip(elem.value, new.value, strict=False)):
                result.update(_diff(old_item, new_item, f"{path}[{index}]."))
        elif new.value != elem.value:
            result[path] = "changed"
    for elem in after:
        if elem.tag not in before:
            result[f"{prefix}{int(elem.tag):08X}"] = "added"
    return result


def _run_both(pair: Pair, suffix: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    answers = []
    for url in (pair.orthanc, pair.ours):
        answer = requests.post(
            f"{url}/studies/{pair.study_id}/{suffix}", data=json.dumps(body), timeout=60
        )
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    return answers


def _compare(pair: Pair, suffix: str, body: dict[str, Any]) -> None:
    theirs, mine = _run_both(pair, suffix, body)
    assert sorted(theirs) == sorted(mine)
    assert theirs["InstancesCount"] == mine["InstancesCount"] == 3
    their_files, my_files = _files(pair.orthanc, theirs["ID"]), _files(pair.ours, mine["ID"])
    assert sorted(their_files) == sorted(my_files)
    for key, original in pair.originals.items():
        expected = _diff(original, their_files[key])
        assert expected, "Orthanc changed nothing?"
        assert _diff(original, my_files[key]) == expected, key


@pytest.mark.parametrize("version", ["2008", "2017c", "2021b", None])
def test_anonymize_changes_what_orthanc_changes(pair: Pair, version: str | None) -> None:
    _compare(pair, "anonymize", {"DicomVersion": version} if version else {})


@pytest.mark.parametrize(
    "body",
    [
        {
            "Keep": ["StudyDescription", "InstitutionName"],
            "Replace": {"OperatorsName": "Someone"},
            "Remove": ["Modality"],
            "KeepPrivateTags": True,
        },
        {"Keep": ["RequestAttributesSequence", "ReferencedImageSequence"]},
        {"Keep": ["ReferencedImageSequence[*].ReferencedSOPInstanceUID"]},
        {"Remove": ["ReferencedImageSequence[0].ReferencedSOPInstanceUID"]},
        {"Replace": {"ReferencedImageSequence[*].ReferencedSOPClassUID": "1.2.3"}},
        {"Replace": {"SourceImageSequence[0].0008,0104": "added"}, "Keep": ["0009,1001"]},
    ],
)
def test_anonymize_with_options_as_orthanc(pair: Pair, body: dict[str, Any]) -> None:
    _compare(pair, "anonymize", body)


@pytest.mark.parametrize(
    "body",
    [
        {
            "Replace": {"InstitutionName": "Other", "StudyDescription": "X"},
            "Remove": ["OperatorsName", "PatientBirthDate"],
            "RemovePrivateTags": True,
        },
        {"Replace": {"StudyInstanceUID": "1.2.826.0.1.3680043.10.1137.5.5"}, "Force": True},
        {
            "Remove": ["ReferencedImageSequence[1].ReferencedSOPClassUID"],
            "Replace": {"RequestAttributesSequence[*].CodeMeaning": "other"},
        },
    ],
)
def test_modify_changes_what_orthanc_changes(pair: Pair, body: dict[str, Any]) -> None:
    _compare(pair, "modify", body)


@pytest.mark.parametrize(
    "body",
    [
        [1],
        {"Keep": "x"},
        {"DicomVersion": "1999"},
        {"Replace": {"StudyInstanceUID": "1.2.3"}},
        {"Force": "yes"},
        {"Remove": ["ReferencedImageSequence.ReferencedSOPInstanceUID"]},
    ],
)
def test_bad_bodies_as_orthanc(pair: Pair, body: Any) -> None:
    for suffix in ("anonymize", "modify"):
        statuses = [
            requests.post(
                f"{url}/studies/{pair.study_id}/{suffix}", data=json.dumps(body), timeout=30
            ).status_code
            for url in (pair.orthanc, pair.ours)
        ]
        assert statuses[0] == statuses[1], (suffix, body)


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("anonymize", {}),
        ("modify", {"Replace": {"InstitutionName": "Other"}, "Remove": ["OperatorsName"]}),
        ("modify", {"Replace": {"SeriesInstanceUID": "1.2.3.4"}, "Force": True}),
    ],
)
def test_one_instance_answered_as_a_file_as_orthanc(
    pair: Pair, suffix: str, body: dict[str, Any]
) -> None:
    instance_id = requests.get(f"{pair.ours}/studies/{pair.study_id}/instances", timeout=30)
    first = instance_id.json()[0]["ID"]
    files = []
    for url in (pair.orthanc, pair.ours):
        answer = requests.post(
            f"{url}/instances/{first}/{suffix}", data=json.dumps(body), timeout=30
        )
        assert answer.status_code == 200, answer.text
        files.append(dcmread(io.BytesIO(answer.content)))
    original = requests.get(f"{pair.ours}/instances/{first}/file", timeout=30).content
    before = dcmread(io.BytesIO(original))
    assert _diff(before, files[1]) == _diff(before, files[0])


def test_rt_references_as_orthanc(pair: Pair) -> None:
    raw = to_bytes(rt_structure_set())
    files = []
    for url in (pair.orthanc, pair.ours):
        instance_id = requests.post(f"{url}/instances", data=raw, timeout=30).json()["ID"]
        answer = requests.post(f"{url}/instances/{instance_id}/anonymize", data="{}", timeout=30)
        assert answer.status_code == 200, answer.text
        files.append(dcmread(io.BytesIO(answer.content)))
    before = dcmread(io.BytesIO(raw))
    assert _diff(before, files[1]) == _diff(before, files[0])
    for ds in files:  # the study reference maps to the new study UID on both
        frame = ds.ReferencedFrameOfReferenceSequence[0]
        study = frame.RTReferencedStudySequence[0]
        assert study.ReferencedSOPInstanceUID == ds.StudyInstanceUID
