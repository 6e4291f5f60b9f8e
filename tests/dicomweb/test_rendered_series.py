"""Rendered study and series (PS3.18 10.4.1.1.3): multipart/related of one rendered image per
instance, with the parameters of a rendered instance; instances without pixels left out.

dicomweb-client's ``retrieve_series_rendered`` expects a single image, so these tests read
the multipart answer with the standard library's MIME parser instead."""

from __future__ import annotations

from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage

from tests.e2e.helpers import serve
from tests.factories import make_image, new_uid

STUDY = new_uid()
SERIES = new_uid()
REPORT_SERIES = new_uid()


def _slice(number: int) -> Dataset:
    """A 32x48 image, uniform grey level ``number * 1000``."""
    ds = make_image(study_uid=STUDY, series_uid=SERIES, rows=32, columns=48, instance_number=number)
    ds.PixelData = np.full((32, 48), number * 1000, dtype=np.uint16).tobytes()
    return ds


def _report() -> Dataset:
    ds = make_image(
        study_uid=STUDY,
        series_uid=REPORT_SERIES,
        sop_class=str(BasicTextSRStorage),
        modality="SR",
    )
    del ds.PixelData
    return ds


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory, "rendered-series") as server:
        url = f"http://127.0.0.1:{server.http_port}/dicom-web"
        DICOMwebClient(url=url).store_instances([_slice(1), _slice(2), _slice(3), _report()])
        yield f"{url}/studies/{STUDY}"


def _parts(response: requests.Response) -> list[tuple[str, bytes]]:
    assert response.status_code == 200, response.text
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    assert message.is_multipart()
    return [
        (part.get_content_type(), part.get_payload(decode=True)) for part in message.iter_parts()
    ]


def _grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(data)).convert("L"), dtype=np.int32)


def test_series_rendered_is_one_jpeg_per_instance(base: str) -> None:
    response = requests.get(
        f"{base}/series/{SERIES}/rendered",
        params={"window": "2000,2000"},  # 1000 -> black, 2000 -> mid grey, 3000 -> white
        headers={"Accept": 'multipart/related; type="image/jpeg"'},
        timeout=30,
    )
    assert response.headers["Content-Type"].startswith('multipart/related; type="image/jpeg"')
    parts = _parts(response)
    assert [media for media, _ in parts] == ["image/jpeg"] * 3
    means = sorted(float(_grey(data).mean()) for _, data in parts)
    assert means[0] < 5 and 110 < means[1] < 145 and means[2] > 250
    assert all(_grey(data).shape == (32, 48) for _, data in parts)


def test_series_rendered_honours_viewport_and_png(base: str) -> None:
    response = requests.get(
        f"{base}/series/{SERIES}/rendered",
        params={"viewport": "24,16"},
        headers={"Accept": 'multipart/related; type="image/png"'},
        timeout=30,
    )
    parts = _parts(response)
    assert [media for media, _ in parts] == ["image/png"] * 3
    assert all(_grey(data).shape == (16, 24) for _, data in parts)


def test_study_rendered_leaves_out_what_has_no_pixels(base: str) -> None:
    parts = _parts(requests.get(f"{base}/rendered", timeout=30))
    assert len(parts) == 3  # the report is left out


def test_unknown_series_and_unrenderable_series(base: str) -> None:
    assert requests.get(f"{base}/series/{new_uid()}/rendered", timeout=30).status_code == 404
    report_only = requests.get(f"{base}/series/{REPORT_SERIES}/rendered", timeout=30)
    assert report_only.status_code == 406
