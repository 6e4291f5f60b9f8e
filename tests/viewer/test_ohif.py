"""The bundled OHIF viewer in headless Chromium against a running server: the study list
shows our studies, a deep link renders the image (checked on the screenshot's pixels) and
the series thumbnail, and nothing is fetched from anywhere but our own server."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset

from pacs.viewer import installed_version
from tests.conftest import RunningServer, start_server, wait_for_port
from tests.factories import make_image, make_radiograph, new_uid
from tests.viewer.browser import (
    VIEWER_DIR,
    browser,
    crop,
    element_box,
    patch_mean,
    poll,
    save,
    screenshot,
)

SIZE = 256
DISK_RADIUS = 64  # a bright disk (CT 2000) centred on a black (0) 256 x 256 slice
RENDER_TIMEOUT = 120.0
VIEWPORT_CANVAS = '[data-cy="viewport-pane"] canvas.cornerstone-canvas'
THUMBNAIL = '[data-cy="study-browser-thumbnail"] img'


@dataclass
class Site:
    server: RunningServer
    base: str
    study_uid: str
    shots: Path


def _disk_series(study_uid: str, count: int = 5) -> list[Dataset]:
    series_uid = new_uid()
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    disk = (rows - SIZE / 2) ** 2 + (columns - SIZE / 2) ** 2 < DISK_RADIUS**2
    pixels = np.where(disk, 2000, 0).astype(np.uint16).tobytes()
    slices = []
    for number in range(count):
        ds = make_image(
            rows=SIZE,
            columns=SIZE,
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=number + 1,
            patient_name="Viewer^Phantom",
            patient_id="VIEW001",
            study_description="PHANTOM DISK",
            accession="VIEWACC1",
            ImagePositionPatient=[0.0, 0.0, 2.0 * number],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            PixelSpacing=[1.0, 1.0],
            SliceThickness=2.0,
            WindowCenter=1000,
            WindowWidth=2000,
            RescaleIntercept=0,
            RescaleSlope=1,
        )
        ds.PixelData = pixels
        slices.append(ds)
    return slices


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if installed_version(VIEWER_DIR) is None:
        pytest.skip(
            f"the OHIF viewer is not installed in {VIEWER_DIR} "
            f"(python -m pacs install-viewer {VIEWER_DIR})"
        )
    tmp = tmp_path_factory.mktemp("ohif")
    server = start_server(tmp, http_options=f'viewer_dir = "{VIEWER_DIR}"')
    try:
        wait_for_port(server.http_port, process=server.process)
        base = f"http://127.0.0.1:{server.http_port}"
        study_uid = new_uid()
        other = make_radiograph(
            patient_name="Other^Patient", patient_id="VIEW002", accession="VIEWACC2"
        )
        DICOMwebClient(url=f"{base}/dicom-web").store_instances([*_disk_series(study_uid), other])
        yield Site(server, base, study_uid, tmp / "screenshots")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver(site: Site) -> Iterator[Any]:
    with browser() as chromium:
        yield chromium


def _device_scale(driver: Any) -> float:
    return float(driver.execute_script("return window.devicePixelRatio || 1;"))


def _disk_measurements(pixels: np.ndarray) -> dict[str, float]:
    """Luminance inside and outside the disk, where a fitted square image puts it: the
    image fills the shorter side of the viewport, centred."""
    height, width = pixels.shape
    side = min(height, width)
    cy, cx = height / 2, width / 2
    inside, outside = 0.6 * side * DISK_RADIUS / SIZE, 1.4 * side * DISK_RADIUS / SIZE
    half = side * 0.02
    # Left, right and below the centre: the onboarding pop-up may cover the top.
    directions = ((0.0, -1.0), (0.0, 1.0), (1.0, 0.0))
    return {
        "centre": patch_mean(pixels, cy, cx, side * 0.05),
        "inside": min(
            patch_mean(pixels, cy + dy * inside, cx + dx * inside, half) for dy, dx in directions
        ),
        "outside": max(
            patch_mean(pixels, cy + dy * outside, cx + dx * outside, half) for dy, dx in directions
        ),
    }


def _disk_shown(m: dict[str, float]) -> bool:
    return m["centre"] > 200 and m["inside"] > 200 and m["outside"] < 40


def _server_failures(server: RunningServer) -> list[str]:
    """Access-log lines of viewer or DICOMweb requests that did not succeed."""
    pattern = re.compile(r'"GET (/viewer\S*|/dicom-web\S*) HTTP/[\d.]+" ([45]\d\d) ')
    return [line for line in server.log_text().splitlines() if pattern.search(line)]


def test_study_list_shows_our_studies(site: Site, driver: Any) -> None:
    driver.get(f"{site.base}/viewer/")

    seen: list[str] = [""]

    def listed() -> str | None:
        seen[0] = str(driver.execute_script("return document.body.innerText"))
        return seen[0] if "PHANTOM DISK" in seen[0] and "Other, Patient" in seen[0] else None

    text = poll(listed, RENDER_TIMEOUT)
    save(driver, site.shots / "study-list.png")
    assert text is not None, f"the study list never showed both studies: {seen[0][:2000]!r}"
    assert "Viewer, Phantom" in text and "VIEWACC1" in text and "VIEWACC2" in text


def test_deep_link_renders_the_image_and_the_thumbnail(site: Site, driver: Any) -> None:
    started = time.monotonic()
    driver.get(f"{site.base}/viewer/viewer?StudyInstanceUIDs={site.study_uid}")
    scale = _device_scale(driver)
    last: dict[str, Any] = {}

    def rendered() -> dict[str, float] | None:
        box = element_box(driver, VIEWPORT_CANVAS)
        if box is None or box.width < 100 or box.height < 100:
            return None
        measured = _disk_measurements(crop(screenshot(driver), box, scale))
        last.update(measured, box=box)
        return measured if _disk_shown(measured) else None

    measured = poll(rendered, RENDER_TIMEOUT)
    first_image_s = time.monotonic() - started
    save(driver, site.shots / "study.png")
    assert measured is not None, f"the disk never showed in the viewport: {last}"

    def thumbnail() -> np.ndarray | None:
        box = element_box(driver, THUMBNAIL)
        if box is None or box.width < 16:
            return None
        pixels = crop(screenshot(driver), box, scale)
        return pixels if pixels.size and pixels.std() > 20 else None

    pixels = poll(thumbnail, 60.0)
    save(driver, site.shots / "study-thumbnail.png")
    assert pixels is not None, "no thumbnail with an image in the study browser"
    # The thumbnail shows the same disk: its centre is brighter than its corners.
    h, w = pixels.shape
    centre = patch_mean(pixels, h / 2, w / 2, min(h, w) * 0.1)
    corners = max(patch_mean(pixels, r, c, 2) for r in (3, h - 4) for c in (3, w - 4))
    assert centre > corners + 40, (centre, corners)

    # Cross-origin isolated (our COOP/COEP headers), and nothing our CSP blocked.
    assert driver.execute_script("return window.crossOriginIsolated") is True
    console = [entry["message"] for entry in driver.get_log("browser")]
    blocked = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    assert not blocked, blocked
    # Offline: every resource came from our server; and we served every one of them.
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    foreign = [url for url in resources if not url.startswith((site.base, "data:", "blob:"))]
    assert not foreign, foreign
    assert any("/frames/" in url for url in resources), resources
    assert not _server_failures(site.server), _server_failures(site.server)
    (site.shots / "timing.json").write_text(
        json.dumps({"deep_link_to_first_image_s": round(first_image_s, 2), **measured}),
        encoding="utf-8",
    )
    print(f"deep link to first rendered image: {first_image_s:.2f} s; {measured}")


# Real files of several codecs: the viewer decodes the frames our server passes through.
REAL_SAMPLES = (
    "pydicom-data/693_J2KR.dcm",  # CT, JPEG 2000 lossless
    "pylibjpeg-data/JPEGLS/CT1_JLSN.dcm",  # CT, JPEG-LS near-lossless
    "orthanc-tests/Issue44/Monochrome1-Jpeg.dcm",  # CR, JPEG baseline, MONOCHROME1
)


def _stow_file(base: str, data: bytes) -> None:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    response = requests.post(
        f"{base}/dicom-web/studies", data=body, headers={"Content-Type": content_type}, timeout=60
    )
    assert response.status_code == 200, response.text


def _as_small(pixels: np.ndarray) -> np.ndarray:
    image = Image.fromarray(pixels.astype(np.uint8)).resize((64, 64), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float64)


@pytest.mark.shared_data
@pytest.mark.parametrize("sample", REAL_SAMPLES)
def test_real_samples_look_like_our_own_rendering(
    site: Site, driver: Any, shared_data: Path, sample: str
) -> None:
    path = shared_data / "dicom-samples" / sample
    data = path.read_bytes()
    header = dcmread(io.BytesIO(data), stop_before_pixels=True)
    _stow_file(site.base, data)
    instance = (
        f"{site.base}/dicom-web/studies/{header.StudyInstanceUID}/series/"
        f"{header.SeriesInstanceUID}/instances/{header.SOPInstanceUID}"
    )
    ours = Image.open(io.BytesIO(requests.get(f"{instance}/rendered", timeout=60).content))
    reference = _as_small(np.asarray(ours.convert("L")))
    driver.get(f"{site.base}/viewer/viewer?StudyInstanceUIDs={header.StudyInstanceUID}")
    scale = _device_scale(driver)
    rows, columns = int(header.Rows), int(header.Columns)
    last: list[float] = []

    def similar() -> float | None:
        box = element_box(driver, VIEWPORT_CANVAS)
        if box is None or box.width < 100:
            return None
        viewport = crop(screenshot(driver), box, scale)
        height, width = viewport.shape
        fit = min(width / columns, height / rows)
        top, left = (height - rows * fit) / 2, (width - columns * fit) / 2
        shown = viewport[
            round(top) : round(top + rows * fit), round(left) : round(left + columns * fit)
        ]
        if shown.size == 0 or shown.std() < 5:
            return None
        r = float(np.corrcoef(_as_small(shown).ravel(), reference.ravel())[0, 1])
        last.append(r)
        return r if r > 0.9 else None

    r = poll(similar, RENDER_TIMEOUT)
    save(driver, site.shots / f"{path.stem}.png")
    assert r is not None, f"{sample}: the viewport never matched /rendered (r: {last[-3:]})"
