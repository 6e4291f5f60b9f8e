"""Our answers next to a real Orthanc's (1.10.1, ``apt-get install orthanc``) on the same
data: the same ids, keys and values. Skips where Orthanc is not installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.conftest import wait_for_port
from tests.e2e.helpers import serve
from tests.factories import make_image, make_series, to_bytes
from tests.orthanc_compat.real_orthanc import running_orthanc

# Values that differ by nature: times, Orthanc's attachment UUID, stability (a timer).
VOLATILE = frozenset({"LastUpdate", "FileUuid", "IsStable", "Date"})


def _data() -> list[Dataset]:
    ct = make_series(
        2,
        patient_id="PAT001",
        study_uid="1.2.3.4",
        series_uid="1.2.3.4.5",
        rows=4,
        columns=4,
        InstitutionName="Bach Mai",
        Manufacturer="ACME",
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )
    other = make_image(
        patient_id="PAT002",
        patient_name="Nguyễn^Văn A",
        charset="ISO_IR 192",
        study_uid="1.2.3.9",
        series_uid="1.2.3.9.1",
        sop_uid="1.2.3.9.1.1",
        modality="MR",
        rows=4,
        columns=4,
        study_date="20230301",
        PixelSpacing=["0.5", "0.5"],
    )
    item = Dataset()
    item.CodeValue = "X1"
    item.CodeMeaning = "thing"
    other.ProcedureCodeSequence = Sequence([item])
    other.ImageComments = "x" * 300  # longer than Orthanc's 256: "TooLong"
    volume = [  # positions out of instance-number order: ordered-slices sorts by position
        make_image(
            patient_id="PAT003",
            study_uid="1.2.3.7",
            series_uid="1.2.3.7.1",
            instance_number=number,
            rows=4,
            columns=4,
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0, 0, z],
        )
        for number, z in ((1, 10.0), (2, 0.0), (3, 5.0))
    ]
    return [*ct, other, *volume]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    orthanc_folder = tmp_path_factory.mktemp("real-orthanc")
    with (
        running_orthanc(orthanc_folder, Name="compare") as orthanc,
        serve(tmp_path_factory, "ours") as server,
    ):
        wait_for_port(server.http_port, process=server.process)
        ours = f"http://127.0.0.1:{server.http_port}"
        for ds in _data():
            raw = to_bytes(ds)
            theirs_answer = requests.post(f"{orthanc}/instances", data=raw, timeout=30)
            our_answer = requests.post(f"{ours}/instances", data=raw, timeout=30)
            assert our_answer.json() == theirs_answer.json()
        yield orthanc, ours


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _both(servers: tuple[str, str], path: str, method: str = "GET", body: Any = None) -> Any:
    orthanc, ours = servers
    data = json.dumps(body) if isinstance(body, dict | list) else body
    theirs = requests.request(method, f"{orthanc}{path}", data=data, timeout=30)
    mine = requests.request(method, f"{ours}{path}", data=data, timeout=30)
    assert mine.status_code == theirs.status_code, path
    if theirs.status_code >= 400 and not theirs.content:
        return None, None  # Orthanc 1.10.1 sends some errors without a body; ours has one
    if theirs.content[:1] in (b"{", b"[") or "json" in theirs.headers.get("Content-Type", ""):
        # (Orthanc's error bodies are JSON without a JSON Content-Type)
        return _strip(theirs.json()), _strip(mine.json())
    return theirs.content, mine.content


def test_resource_lists_and_objects(servers: tuple[str, str]) -> None:
    for level in ("patients", "studies", "series", "instances"):
        theirs, mine = _both(servers, f"/{level}")
        assert sorted(mine) == sorted(theirs)
        theirs, mine = _both(servers, f"/{level}?expand")
        assert sorted(mine, key=lambda r: r["ID"]) == sorted(theirs, key=lambda r: r["ID"])
        for public_id in theirs:
            assert _both(servers, f"/{level}/{public_id['ID']}")[1] == public_id


def test_children_and_parents(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    [instance, *_] = requests.get(f"{orthanc}/instances", timeout=30).json()
    for sub in ("series", "study", "patient"):
        theirs, mine = _both(servers, f"/instances/{instance}/{sub}")
        assert mine == theirs
    for study in requests.get(f"{orthanc}/studies", timeout=30).json():
        for sub in ("series", "instances", "patient"):
            theirs, mine = _both(servers, f"/studies/{study}/{sub}")
            assert mine == theirs


def test_instance_content(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    for instance in requests.get(f"{orthanc}/instances", timeout=30).json():
        for sub in (
            "tags",
            "tags?simplify",
            "simplified-tags",
            "header",
            "content",
            "content/0010-0010",
            "content/0020-0037",
            "frames",
            "frames/0/raw",
        ):
            theirs, mine = _both(servers, f"/instances/{instance}/{sub}")
            assert mine == theirs, sub


def test_sequences_in_content(servers: tuple[str, str]) -> None:
    instance = (
        "/instances/"
        + requests.post(f"{servers[0]}/tools/lookup", data="1.2.3.9.1.1", timeout=30).json()[0][
            "ID"
        ]
    )
    for sub in ("content/0008-1032", "content/0008-1032/0", "content/0008-1032/0/0008-0100"):
        theirs, mine = _both(servers, f"{instance}/{sub}")
        assert mine == theirs, sub


def test_find_lookup_and_statistics(servers: tuple[str, str]) -> None:
    for body in (
        {"Level": "Study", "Query": {"PatientName": "doe*"}},
        {"Level": "Study", "Query": {"StudyDescription": "ct*"}, "Expand": True},
        {"Level": "Study", "Query": {"PatientName": "doe*"}, "CaseSensitive": True},
        {"Level": "Patient", "Query": {"PatientName": "nguy*"}},
        {"Level": "Study", "Query": {"StudyDate": "20240101-"}},
        {"Level": "Series", "Query": {"Modality": "MR"}, "Expand": True},
        {"Level": "Instance", "Query": {"StudyInstanceUID": "1.2.3.4"}, "Limit": 1},
        {"Level": "Study", "Query": {"0008,0050": "ACC001"}},
    ):
        theirs, mine = _both(servers, "/tools/find", "POST", body)
        assert sorted(mine, key=str) == sorted(theirs, key=str), body
    for needle in ("1.2.3.4", "PAT002", "1.2.3.9.1.1", "nothing"):
        theirs, mine = _both(servers, "/tools/lookup", "POST", needle)
        assert mine == theirs
    theirs, mine = _both(servers, "/statistics")
    assert {k: mine[k] for k in theirs if "Size" not in k} == {
        k: v for k, v in theirs.items() if "Size" not in k
    }
    theirs, mine = _both(servers, "/system")
    assert set(theirs) <= set(mine)
    assert (mine["ApiVersion"], mine["Version"]) == (theirs["ApiVersion"], theirs["Version"])


def test_changes_name_the_same_resources(servers: tuple[str, str]) -> None:
    theirs, mine = _both(servers, "/changes?limit=1000")
    assert set(theirs) == set(mine) == {"Changes", "Done", "Last"}
    new = {"NewPatient", "NewStudy", "NewSeries", "NewInstance"}

    def kinds(changes: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (c["ChangeType"], c["ResourceType"], c["ID"]) for c in changes if c["ChangeType"] in new
        }

    assert kinds(mine["Changes"]) == kinds(theirs["Changes"])
    assert set(mine["Changes"][0]) == set(theirs["Changes"][0])


def test_errors_have_orthancs_status_and_keys(servers: tuple[str, str]) -> None:
    for method, path, body in (
        ("POST", "/instances", b"garbage"),
        ("POST", "/tools/find", "{bad"),
        ("POST", "/tools/find", {"Level": "Foo", "Query": {}}),
        ("POST", "/tools/find", {"Level": "Study"}),
    ):
        theirs, mine = _both(servers, path, method, body)
        assert set(theirs) <= set(mine), path
        for key in ("HttpError", "HttpStatus", "Method", "Uri"):
            assert mine[key] == theirs[key], (path, key)
    # A path no Orthanc route serves is the root application's plain 404 (documented)
    orthanc, ours = servers
    assert requests.get(f"{orthanc}/nonexistent", timeout=30).status_code == 404
    assert requests.get(f"{ours}/nonexistent", timeout=30).status_code == 404


def test_resource_statistics(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    for level in ("patients", "studies", "series"):
        for public_id in requests.get(f"{orthanc}/{level}", timeout=30).json():
            theirs, mine = _both(servers, f"/{level}/{public_id}/statistics")
            assert mine == theirs, level


def test_instance_metadata(servers: tuple[str, str]) -> None:
    orthanc, ours = servers
    for public_id in requests.get(f"{orthanc}/instances", timeout=30).json():
        theirs, mine = _both(servers, f"/instances/{public_id}/metadata?expand")
        assert set(mine) <= set(theirs)
        for key in ("TransferSyntax", "SopClassUid", "Origin", "IndexInSeries"):
            assert mine[key] == theirs[key], key
        theirs_one, mine_one = _both(servers, f"/instances/{public_id}/metadata/TransferSyntax")
        assert mine_one == theirs_one
    assert requests.get(f"{ours}/exports", timeout=30).json()["Exports"] == []


def test_shared_tags(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    for level in ("patients", "studies", "series"):
        for public_id in requests.get(f"{orthanc}/{level}", timeout=30).json():
            for query in ("", "?simplify"):
                theirs, mine = _both(servers, f"/{level}/{public_id}/shared-tags{query}")
                assert mine == theirs, (level, query, set(theirs) ^ set(mine))


def test_modules(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    for level in ("patients", "studies", "series", "instances"):
        for public_id in requests.get(f"{orthanc}/{level}", timeout=30).json():
            for query in ("", "?simplify", "?short"):
                theirs, mine = _both(servers, f"/{level}/{public_id}/module{query}")
                assert mine == theirs, (level, query)
    for study in requests.get(f"{orthanc}/studies", timeout=30).json():
        theirs, mine = _both(servers, f"/studies/{study}/module-patient?simplify")
        assert mine == theirs


def test_ordered_slices(servers: tuple[str, str]) -> None:
    orthanc, _ = servers
    kinds = set()
    for series in requests.get(f"{orthanc}/series", timeout=30).json():
        theirs, mine = _both(servers, f"/series/{series}/ordered-slices")
        assert mine == theirs
        kinds.add(mine["Type"])
    assert kinds == {"Volume", "Sequence"}
