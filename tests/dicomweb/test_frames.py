"""WADO-RS frames with dicomweb-client: native frames, decoded compressed frames, and
compressed frames passed through on request."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from tests.e2e.helpers import serve, store
from tests.factories import make_image, new_uid


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DICOMwebClient, dict]]:
    with serve(tmp_path_factory, "frames") as server:
        study = new_uid()
        native = make_image(study_uid=study, rows=24, columns=20)
        multi = make_image(study_uid=study, rows=8, columns=8, NumberOfFrames=3)
        multi.PixelData = np.arange(3 * 64, dtype=np.uint16).tobytes()
        rle = make_image(study_uid=study, rows=16, columns=16)
        rle.compress(RLELossless)
        assert store(server.dimse_port, [native, multi]) == [0, 0]
        assert store(server.dimse_port, [rle]) == [0]  # its own context: RLE
        client = DICOMwebClient(url=f"http://127.0.0.1:{server.http_port}/dicom-web")
        yield client, {"native": native, "multi": multi, "rle": rle}


def _frames(client: DICOMwebClient, ds: Dataset, numbers: list[int]) -> list[bytes]:
    return client.retrieve_instance_frames(
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
        frame_numbers=numbers,
    )


def test_native_frames_are_cut_from_the_pixel_data(site: tuple[DICOMwebClient, dict]) -> None:
    client, data = site
    assert _frames(client, data["native"], [1]) == [data["native"].PixelData]
    multi = data["multi"].PixelData
    assert _frames(client, data["multi"], [3, 1]) == [multi[256:384], multi[0:128]]


def test_compressed_frames_are_decoded_unless_asked_as_stored(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, data = site
    rle = data["rle"]
    decoded = _frames(client, rle, [1])[0]
    assert decoded == rle.pixel_array.astype("<u2").tobytes()
    url = (
        f"{client.base_url}/studies/{rle.StudyInstanceUID}/series/{rle.SeriesInstanceUID}"
        f"/instances/{rle.SOPInstanceUID}/frames/1"
    )
    raw = requests.get(
        url,
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        timeout=30,
    )
    assert raw.status_code == 200
    assert f"transfer-syntax={RLELossless}".encode() in raw.content
    assert len(raw.content) < len(decoded) + 400


@pytest.mark.parametrize(("frames", "status"), [("9", 404), ("0", 400), ("a,b", 400)])
def test_bad_frame_numbers(site: tuple[DICOMwebClient, dict], frames: str, status: int) -> None:
    client, data = site
    ds = data["native"]
    url = (
        f"{client.base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/{frames}"
    )
    assert requests.get(url, timeout=30).status_code == status


def test_frames_in_a_named_syntax(site: tuple[DICOMwebClient, dict]) -> None:
    """The stored syntax named explicitly is sent as stored; one we cannot produce is 406."""
    client, data = site

    def get(ds: Dataset, syntax: str) -> requests.Response:
        url = (
            f"{client.base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/frames/1"
        )
        accept = f'multipart/related; type="application/octet-stream"; transfer-syntax={syntax}'
        return requests.get(url, headers={"Accept": accept}, timeout=30)

    as_stored = get(data["rle"], str(RLELossless))
    assert as_stored.status_code == 200
    assert f"transfer-syntax={RLELossless}".encode() in as_stored.content
    refused = get(data["native"], str(RLELossless))
    assert refused.status_code == 406
    assert "cannot be sent" in refused.text
