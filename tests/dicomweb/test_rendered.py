"""Rendered images (WADO-RS rendered, WADO-URI): windowing, MONOCHROME1, viewport, formats."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread

from tests.conftest import RunningServer
from tests.e2e.helpers import serve, store
from tests.factories import make_image, new_uid


def _ramp(photometric: str):  # 0..4095 left to right
    ds = make_image(study_uid=STUDY, rows=32, columns=64, PhotometricInterpretation=photometric)
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (32, 1))
    ds.PixelData = ramp.tobytes()
    return ds


STUDY = new_uid()
MONO2 = _ramp("MONOCHROME2")
MONO1 = _ramp("MONOCHROME1")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory, "rendered") as server:
        assert store(server.dimse_port, [MONO2, MONO1]) == [0, 0]
        yield server


def _url(node: RunningServer, ds, suffix: str = "/rendered") -> str:
    return (
        f"http://127.0.0.1:{node.http_port}/dicom-web/studies/{ds.StudyInstanceUID}"
        f"/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}{suffix}"
    )


def _image(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(BytesIO(response.content)).convert("L"), dtype=np.int32)


def test_rendered_jpeg_spans_the_grey_range(node: RunningServer) -> None:
    response = requests.get(_url(node, MONO2), timeout=30)
    assert response.headers["Content-Type"] == "image/jpeg"
    pixels = _image(response)
    assert pixels.shape == (32, 64)
    assert pixels[:, 0].mean() < 10 and pixels[:, -1].mean() > 245


def test_monochrome1_is_inverted(node: RunningServer) -> None:
    pixels = _image(requests.get(_url(node, MONO1), timeout=30))
    assert pixels[:, 0].mean() > 245 and pixels[:, -1].mean() < 10


def test_window_viewport_and_png(node: RunningServer) -> None:
    response = requests.get(
        _url(node, MONO2),
        params={"window": "1024,256", "viewport": "32,16"},
        headers={"Accept": "image/png"},
        timeout=30,
    )
    assert response.headers["Content-Type"] == "image/png"
    pixels = _image(response)
    assert pixels.shape == (16, 32)
    assert pixels[:, :5].max() == 0 and pixels[:, -5:].min() == 255  # saturated outside


def test_wado_uri_jpeg_and_dicom(node: RunningServer) -> None:
    params = {
        "requestType": "WADO",
        "studyUID": str(MONO2.StudyInstanceUID),
        "seriesUID": str(MONO2.SeriesInstanceUID),
        "objectUID": str(MONO2.SOPInstanceUID),
    }
    base = f"http://127.0.0.1:{node.http_port}/wado"
    assert _image(requests.get(base, params=params, timeout=30)).shape == (32, 64)
    dicom = requests.get(base, params={**params, "contentType": "application/dicom"}, timeout=30)
    assert dicom.headers["Content-Type"] == "application/dicom"
    assert dcmread(BytesIO(dicom.content)).PixelData == MONO2.PixelData
    assert requests.get(base, params={**params, "requestType": "X"}, timeout=30).status_code == 400
    missing = {**params, "objectUID": new_uid()}
    assert requests.get(base, params=missing, timeout=30).status_code == 404


def test_thumbnails_of_study_series_and_instance(node: RunningServer) -> None:
    base = f"http://127.0.0.1:{node.http_port}/dicom-web/studies/{STUDY}"
    for url in (
        f"{base}/thumbnail",
        f"{base}/series/{MONO2.SeriesInstanceUID}/thumbnail",
        _url(node, MONO2, "/thumbnail"),
    ):
        pixels = _image(requests.get(url, timeout=30))
        assert max(pixels.shape) <= 128
    unknown = f"http://127.0.0.1:{node.http_port}/dicom-web/studies/{new_uid()}/thumbnail"
    assert requests.get(unknown, timeout=30).status_code == 404
