"""One instance's content: file, tags, header, content paths, frames and images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread

from pacs.core.ids import public_id
from tests.orthanc_compat.conftest import Stored


@pytest.fixture(scope="module")
def instance(stored: Stored) -> str:
    ds = stored.ct[0]
    return public_id("PAT001", "1.2.3.4", "1.2.3.4.5", str(ds.SOPInstanceUID))


def get(stored: Stored, instance: str, sub: str, **headers: str) -> requests.Response:
    return requests.get(f"{stored.url}/instances/{instance}/{sub}", headers=headers, timeout=30)


def test_file_is_the_stored_dicom(stored: Stored, instance: str) -> None:
    response = get(stored, instance, "file")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/dicom"
    ds = dcmread(io.BytesIO(response.content))
    assert ds.SOPInstanceUID == stored.ct[0].SOPInstanceUID
    assert ds.PixelData == stored.ct[0].PixelData


def test_tags_full_simplified_and_short(stored: Stored, instance: str) -> None:
    full = get(stored, instance, "tags").json()
    assert full["0010,0020"] == {"Name": "PatientID", "Type": "String", "Value": "PAT001"}
    assert full["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert full["0028,0010"]["Value"] == "8"
    simple = get(stored, instance, "simplified-tags").json()
    assert simple["PatientID"] == "PAT001" and simple["Rows"] == "8"
    assert simple["PixelData"] is None
    assert get(stored, instance, "tags?simplify").json() == simple
    assert get(stored, instance, "tags?short").json()["0010,0020"] == "PAT001"


def test_non_ascii_and_sequences(stored: Stored) -> None:
    ds = stored.other
    other = public_id(
        "PAT002", str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    )
    simple = get(stored, other, "simplified-tags").json()
    assert simple["PatientName"] == "Nguyễn^Văn A"
    raw = get(stored, other, "content/0010-0010").content
    assert raw.decode("utf-8").rstrip() == "Nguyễn^Văn A"


def test_header_is_the_file_meta(stored: Stored, instance: str) -> None:
    header = get(stored, instance, "header").json()
    assert header["0002,0010"]["Value"] == "1.2.840.10008.1.2.1"
    assert all(key.startswith("0002,") for key in header)


def test_content_paths(stored: Stored, instance: str) -> None:
    keys = get(stored, instance, "content").json()
    assert "0010-0010" in keys and "7fe0-0010" in keys
    assert get(stored, instance, "content/0020-000d").content.rstrip(b"\x00") == b"1.2.3.4"
    missing = get(stored, instance, "content/0011-0011")
    assert missing.status_code == 404 and missing.json()["OrthancStatus"] == 21
    assert get(stored, instance, "content/zzzz").status_code == 400


def test_frames_raw_and_16_bit(stored: Stored, instance: str) -> None:
    assert get(stored, instance, "frames").json() == [0]
    raw = get(stored, instance, "frames/0/raw")
    assert raw.content == stored.ct[0].PixelData
    png = get(stored, instance, "frames/0/image-uint16")
    assert png.headers["Content-Type"] == "image/png"
    values = np.asarray(Image.open(io.BytesIO(png.content)))
    assert np.array_equal(values, stored.ct[0].pixel_array)
    uint8 = np.asarray(Image.open(io.BytesIO(get(stored, instance, "image-uint8").content)))
    assert np.array_equal(uint8, np.clip(stored.ct[0].pixel_array, 0, 255))
    assert get(stored, instance, "frames/1/raw").status_code == 404
    assert get(stored, instance, "frames/x/raw").status_code == 400


def test_preview_and_rendered(stored: Stored, instance: str) -> None:
    for sub in ("preview", "frames/0/preview", "frames/0/rendered", "rendered"):
        response = get(stored, instance, sub)
        assert response.status_code == 200, sub
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "PNG" and image.size == (8, 8) and image.mode == "L"
        pixels = np.asarray(image)
        assert pixels.min() == 0 and pixels.max() == 255  # min-max stretched
    jpeg = get(stored, instance, "preview", Accept="image/jpeg")
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
