"""STOW-RS with dicomweb-client: stored through the same path as C-STORE, per-instance
results, and failures with their reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.conftest import RunningServer
from tests.e2e.helpers import image_uids, serve
from tests.factories import make_series, new_uid, to_bytes


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory, "stow") as server:
        yield server


def _client(node: RunningServer) -> DICOMwebClient:
    return DICOMwebClient(url=f"http://127.0.0.1:{node.http_port}/dicom-web")


def test_stow_then_find_over_dimse_and_retrieve(node: RunningServer) -> None:
    series = make_series(3, study_uid=new_uid())
    result = _client(node).store_instances(series)  # the response, as a pydicom Dataset
    stored = result.ReferencedSOPSequence
    assert {str(item.ReferencedSOPInstanceUID) for item in stored} == {
        str(ds.SOPInstanceUID) for ds in series
    }
    assert all(str(item.RetrieveURL).startswith("http") for item in stored)
    assert "FailedSOPSequence" not in result
    assert image_uids(node.dimse_port, StudyInstanceUID=str(series[0].StudyInstanceUID)) == {
        str(ds.SOPInstanceUID) for ds in series
    }
    back = _client(node).retrieve_series(
        str(series[0].StudyInstanceUID), str(series[0].SeriesInstanceUID)
    )
    assert sorted(ds.PixelData for ds in back) == sorted(ds.PixelData for ds in series)


def _post(node: RunningServer, path: str, parts: list[bytes]) -> requests.Response:
    boundary = "b0undary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
            for part in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    return requests.post(
        f"http://127.0.0.1:{node.http_port}/dicom-web{path}",
        data=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
        },
        timeout=30,
    )


def test_partial_failure_is_202_with_reasons(node: RunningServer) -> None:
    good = make_series(1)[0]
    response = _post(node, "/studies", [to_bytes(good), b"not a DICOM file at all" * 10])
    assert response.status_code == 202
    body = response.json()
    assert body["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert len(body["00081199"]["Value"]) == 1


def test_all_failed_is_409_and_wrong_study_is_reported(node: RunningServer) -> None:
    assert _post(node, "/studies", [b"garbage" * 20]).status_code == 409
    other = make_series(1)[0]
    response = _post(node, f"/studies/{new_uid()}", [to_bytes(other)])
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]


def test_not_multipart_is_415(node: RunningServer) -> None:
    response = requests.post(
        f"http://127.0.0.1:{node.http_port}/dicom-web/studies",
        data=b"x",
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    assert response.status_code == 415
