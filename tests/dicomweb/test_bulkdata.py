"""Every BulkDataURI our metadata emits resolves (dicomweb-client ``retrieve_bulkdata``),
as ``multipart/related; type="application/octet-stream"``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from tests.e2e.helpers import serve
from tests.factories import make_image, new_uid

DOCUMENT = bytes(range(256)) * 8  # 2 KiB: over the inline limit


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DICOMwebClient, dict]]:
    with serve(tmp_path_factory, "bulkdata") as server:
        study = new_uid()
        native = make_image(study_uid=study, rows=16, columns=16)
        native.add_new(0x00420011, "OB", DOCUMENT)  # Encapsulated Document
        native.add_new(0x00091010, "LO", "PACS TEST")  # private creator
        native.add_new(0x00091011, "OB", b"\x01\x02" * 600)  # private bulk value
        multi = make_image(study_uid=study, rows=8, columns=8, NumberOfFrames=3)
        multi.PixelData = np.arange(3 * 64, dtype=np.uint16).tobytes()
        rle = make_image(study_uid=study, rows=16, columns=16)
        pixels = rle.pixel_array.copy()
        rle.compress(RLELossless, generate_instance_uid=False)
        client = DICOMwebClient(url=f"http://127.0.0.1:{server.http_port}/dicom-web")
        client.store_instances([native, multi, rle])
        yield client, {"native": native, "multi": multi, "rle": rle, "rle_pixels": pixels}


def _metadata(client: DICOMwebClient, ds: Dataset) -> dict:
    result: dict = client.retrieve_instance_metadata(
        str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    )
    return result


def test_every_bulkdata_uri_in_the_metadata_resolves(site: tuple[DICOMwebClient, dict]) -> None:
    client, data = site
    native = data["native"]
    metadata = _metadata(client, native)
    uris = {tag: value["BulkDataURI"] for tag, value in metadata.items() if "BulkDataURI" in value}
    assert set(uris) == {"00420011", "00091011", "7FE00010"}
    assert client.retrieve_bulkdata(uris["00420011"]) == [DOCUMENT]
    assert client.retrieve_bulkdata(uris["00091011"]) == [b"\x01\x02" * 600]
    assert client.retrieve_bulkdata(uris["7FE00010"]) == [native.PixelData]


def test_pixel_data_of_a_multiframe_instance_is_the_whole_value(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, data = site
    uri = _metadata(client, data["multi"])["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(uri) == [data["multi"].PixelData]


def test_compressed_pixel_data_is_decoded_or_sent_as_stored_frames(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, data = site
    uri = _metadata(client, data["rle"])["7FE00010"]["BulkDataURI"]
    decoded = client.retrieve_bulkdata(uri)
    assert decoded == [data["rle_pixels"].astype("<u2").tobytes()]
    as_stored = requests.get(
        uri,
        headers={"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'},
        timeout=30,
    )
    assert as_stored.status_code == 200
    assert f"transfer-syntax={RLELossless}" in as_stored.text[:300]


def test_bad_and_missing_tags(site: tuple[DICOMwebClient, dict]) -> None:
    client, data = site
    native = data["native"]
    base = (
        f"{client.base_url}/studies/{native.StudyInstanceUID}/series/"
        f"{native.SeriesInstanceUID}/instances/{native.SOPInstanceUID}/bulkdata"
    )
    assert requests.get(f"{base}/zz", timeout=30).status_code == 400
    assert requests.get(f"{base}/00181030", timeout=30).status_code == 404
    content_type = requests.get(f"{base}/00420011", timeout=30).headers["Content-Type"]
    assert content_type.startswith('multipart/related; type="application/octet-stream"')
