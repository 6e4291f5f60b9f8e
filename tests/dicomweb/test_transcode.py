"""WADO-RS retrieve with transfer-syntax negotiation (PS3.18 8.7.3), with dicomweb-client:
instances stored as JPEG baseline, JPEG-LS lossless, JPEG 2000 lossless and RLE come back
uncompressed by default (pixel for pixel for the lossless ones), as stored with
``transfer-syntax=*``, and a syntax we cannot produce gets 406 (or 206 when only some
instances can be delivered)."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from requests.exceptions import HTTPError

from dicomweb.negotiate import acceptable_transfer_syntaxes, can_decode, choose, parse_accept
from dicomweb.transcode import CannotTranscode, transcode
from pacs.core.dicom_header import summarize
from tests.e2e.helpers import serve
from tests.factories import make_image, new_uid

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
STUDY = new_uid()
SERIES = new_uid()
BROKEN_SERIES = new_uid()


def _original(number: int, series: str = SERIES) -> Dataset:
    return make_image(
        study_uid=STUDY, series_uid=series, rows=64, columns=64, instance_number=number
    )


def _broken() -> Dataset:
    """RLE-labelled pixel data that is not RLE (a corrupt or mislabelled instance)."""
    ds = _original(7, BROKEN_SERIES)
    ds.PixelData = encapsulate([b"\x07" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    return ds


def _jpeg_baseline(number: int) -> tuple[Dataset, np.ndarray]:
    """An 8-bit greyscale JPEG baseline instance (lossy) and the pixels it was made from."""
    ds = _original(number)
    pixels = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    out = BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="JPEG", quality=95)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([out.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds, pixels


def _compressed(number: int, syntax: str) -> tuple[Dataset, np.ndarray]:
    ds = _original(number)
    pixels = ds.pixel_array.copy()
    ds.compress(syntax, generate_instance_uid=False)
    return ds, pixels


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DICOMwebClient, dict]]:
    with serve(tmp_path_factory, "transcode") as server:
        plain = _original(5)
        implicit = _original(6)
        implicit.file_meta.TransferSyntaxUID = IMPLICIT
        made = {
            "jpeg": _jpeg_baseline(1),
            "jpegls": _compressed(2, JPEGLSLossless),
            "j2k": _compressed(3, JPEG2000Lossless),
            "rle": _compressed(4, RLELossless),
            "plain": (plain, plain.pixel_array.copy()),
            "implicit": (implicit, implicit.pixel_array.copy()),
        }
        client = DICOMwebClient(url=f"http://127.0.0.1:{server.http_port}/dicom-web")
        client.store_instances([ds for ds, _ in made.values()])
        client.store_instances([_broken(), _original(8, BROKEN_SERIES)])
        yield client, made


def _retrieve(
    client: DICOMwebClient, ds: Dataset, media_types: tuple = (("application/dicom", EXPLICIT),)
) -> Dataset:
    """The instance as dicomweb-client retrieves it (Explicit VR Little Endian unless told:
    its own default for one instance is ``transfer-syntax=*``)."""
    return client.retrieve_instance(STUDY, SERIES, str(ds.SOPInstanceUID), media_types=media_types)


@pytest.mark.parametrize("name", ["jpegls", "j2k", "rle", "implicit"])
def test_lossless_instances_come_back_uncompressed_pixel_for_pixel(
    site: tuple[DICOMwebClient, dict], name: str
) -> None:
    client, made = site
    stored, pixels = made[name]
    got = _retrieve(client, stored)
    assert got.file_meta.TransferSyntaxUID == EXPLICIT
    assert "PixelData" in got and not got.file_meta.TransferSyntaxUID.is_compressed
    assert np.array_equal(got.pixel_array, pixels)
    assert got.SOPInstanceUID == stored.SOPInstanceUID
    assert got.PatientName == stored.PatientName


def test_jpeg_baseline_is_decoded_close_to_the_original(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, made = site
    stored, pixels = made["jpeg"]
    got = _retrieve(client, stored)
    assert got.file_meta.TransferSyntaxUID == EXPLICIT
    assert got.pixel_array.shape == pixels.shape
    assert np.abs(got.pixel_array.astype(int) - pixels.astype(int)).mean() < 3
    assert got.LossyImageCompression == "01"


def test_implicit_vr_little_endian_on_request(site: tuple[DICOMwebClient, dict]) -> None:
    client, made = site
    stored, pixels = made["rle"]
    url = f"{client.base_url}/studies/{STUDY}/series/{SERIES}/instances/{stored.SOPInstanceUID}"
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={IMPLICIT}'
    response = requests.get(url, headers={"Accept": accept}, timeout=30)
    assert response.status_code == 200
    part = _single_part(response)
    ds = dcmread(BytesIO(part))
    assert ds.file_meta.TransferSyntaxUID == IMPLICIT
    assert np.array_equal(ds.pixel_array, pixels)


def test_any_transfer_syntax_sends_the_stored_bytes(site: tuple[DICOMwebClient, dict]) -> None:
    client, made = site
    for stored, _ in made.values():
        for got in (
            _retrieve(client, stored, media_types=(("application/dicom", "*"),)),
            client.retrieve_instance(STUDY, SERIES, str(stored.SOPInstanceUID)),
        ):
            assert got.file_meta.TransferSyntaxUID == stored.file_meta.TransferSyntaxUID
            assert got.PixelData == stored.PixelData


def test_series_retrieve_transcodes_each_instance(site: tuple[DICOMwebClient, dict]) -> None:
    client, made = site
    got = client.retrieve_series(STUDY, SERIES)
    assert len(got) == len(made)
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in got} == {EXPLICIT}
    by_uid = {str(ds.SOPInstanceUID): ds for ds in got}
    for name in ("jpegls", "j2k", "rle", "plain", "implicit"):
        stored, pixels = made[name]
        assert np.array_equal(by_uid[str(stored.SOPInstanceUID)].pixel_array, pixels)


def test_a_syntax_we_cannot_produce_is_406_with_the_reason(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, made = site
    stored, _ = made["plain"]
    with pytest.raises(HTTPError) as refused:
        _retrieve(client, stored, media_types=(("application/dicom", str(JPEG2000Lossless)),))
    assert refused.value.response.status_code == 406
    assert "cannot be converted" in refused.value.response.text


def test_series_with_some_instances_in_the_asked_syntax_is_206(
    site: tuple[DICOMwebClient, dict],
) -> None:
    client, made = site
    url = f"{client.base_url}/studies/{STUDY}/series/{SERIES}"
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={JPEGLSLossless}'
    response = requests.get(url, headers={"Accept": accept}, timeout=30)
    assert response.status_code == 206
    assert "5 instance(s) left out" in response.headers["Warning"]
    ds = dcmread(BytesIO(_single_part(response)))
    assert ds.SOPInstanceUID == made["jpegls"][0].SOPInstanceUID
    assert ds.PixelData == made["jpegls"][0].PixelData


def test_accept_query_parameter_overrides_the_header(site: tuple[DICOMwebClient, dict]) -> None:
    client, made = site
    stored, _ = made["rle"]
    url = f"{client.base_url}/studies/{STUDY}/series/{SERIES}/instances/{stored.SOPInstanceUID}"
    response = requests.get(
        url,
        params={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        headers={"Accept": "multipart/related; type=application/dicom"},
        timeout=30,
    )
    assert response.status_code == 200
    assert f"transfer-syntax={RLELossless}" in response.text[:400]
    bad = requests.get(url, headers={"Accept": "image/jpeg"}, timeout=30)
    assert bad.status_code == 406
    invalid = requests.get(
        url, headers={"Accept": "multipart/related; type=application/dicom; transfer-syntax=x"}
    )
    assert invalid.status_code == 400


def test_each_representation_has_its_own_etag(site: tuple[DICOMwebClient, dict]) -> None:
    client, made = site
    stored, _ = made["rle"]
    url = f"{client.base_url}/studies/{STUDY}/series/{SERIES}/instances/{stored.SOPInstanceUID}"
    as_stored = requests.get(url, headers={"Accept": "*/*; transfer-syntax=*"}, timeout=30)
    default = requests.get(url, headers={"Accept": "*/*"}, timeout=30)
    assert as_stored.headers["ETag"] != default.headers["ETag"]
    assert "Accept" in default.headers["Vary"]


def _single_part(response: requests.Response) -> bytes:
    boundary = response.headers["Content-Type"].split("boundary=")[1].split(";")[0].strip('"')
    parts = response.content.split(f"--{boundary}".encode())
    body = [p for p in parts if p.strip() not in (b"", b"--")]
    assert len(body) == 1
    return body[0].split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


def test_accept_parsing_rules() -> None:
    ranges = parse_accept('a/b; q=0.5, multipart/related; type="application/dicom"; q=0.9, c/d;q=0')
    assert [r.media_type for r in ranges] == ["multipart/related", "a/b"]
    assert ranges[0].params["type"] == "application/dicom"
    assert acceptable_transfer_syntaxes({}, {}) == [EXPLICIT]
    assert acceptable_transfer_syntaxes(
        {},
        {"accept": "multipart/related; type=application/dicom", "transfer-syntax": IMPLICIT},
    ) == [IMPLICIT]
    assert choose(str(RLELossless), ["*"]) == str(RLELossless)
    assert choose(str(RLELossless), [EXPLICIT]) == EXPLICIT
    assert choose(EXPLICIT, [str(JPEG2000Lossless)]) is None
    assert choose("1.2.840.10008.1.2.2", [EXPLICIT]) is None


def test_real_compressed_samples_transcode(shared_data: Path) -> None:
    """Up to three real samples per stored syntax: the Explicit VR Little Endian version
    has the same pixels (lossless) and the same SOP Instance UID, or is refused cleanly."""
    per_syntax: dict[str, int] = {}
    converted = 0
    for path in sorted((shared_data / "dicom-samples").rglob("*.dcm")):
        try:
            summary, part10 = summarize(path.read_bytes())
        except Exception:  # refused at ingest
            continue
        syntax = summary.transfer_syntax
        if syntax == EXPLICIT or per_syntax.get(syntax, 0) >= 3 or not can_decode(syntax):
            continue
        per_syntax[syntax] = per_syntax.get(syntax, 0) + 1
        try:
            out = dcmread(BytesIO(transcode(part10, EXPLICIT, syntax)))
        except CannotTranscode:
            continue
        original = dcmread(BytesIO(part10))
        assert out.file_meta.TransferSyntaxUID == EXPLICIT
        assert out.SOPInstanceUID == original.SOPInstanceUID
        if "PixelData" in original and syntax not in _LOSSY:
            assert np.array_equal(out.pixel_array, original.pixel_array), path.name
        converted += 1
    assert converted >= 20


_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91"}


def test_undecodable_pixel_data_is_406_or_left_out(site: tuple[DICOMwebClient, dict]) -> None:
    client, _ = site
    series = client.search_for_instances(STUDY, BROKEN_SERIES)
    broken = next(i["00080018"]["Value"][0] for i in series if i["00200013"]["Value"] == [7])
    base = f"{client.base_url}/studies/{STUDY}/series/{BROKEN_SERIES}"
    one = requests.get(f"{base}/instances/{broken}", headers={"Accept": "*/*"}, timeout=30)
    assert one.status_code == 406
    frames = requests.get(f"{base}/instances/{broken}/frames/1", timeout=30)
    assert frames.status_code == 406 and "transfer-syntax=*" in frames.text
    as_stored = requests.get(
        f"{base}/instances/{broken}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
        timeout=30,
    )
    assert as_stored.status_code == 200
    whole = client.retrieve_series(STUDY, BROKEN_SERIES)  # the readable one still comes
    assert [int(ds.InstanceNumber) for ds in whole] == [8]
