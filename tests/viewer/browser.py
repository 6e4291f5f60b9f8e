"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, and checks on
screenshot pixels."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Where `.ci/run` installs the viewer (`python -m pacs install-viewer`: <data_dir>/viewer).
VIEWER_DIR = Path(os.environ.get("PACS_TEST_VIEWER_DIR", REPO / "pacs-data" / "viewer"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1400,900",
    # Offline: no host name resolves except our own server's address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

T = TypeVar("T")


def chromium_driver() -> Any:
    """A fresh headless Chromium session (a new profile each time); skips without one."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            pytest.skip(f"{program} is absent (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@contextmanager
def browser() -> Iterator[Any]:
    """:func:`chromium_driver`, quit afterwards."""
    driver = chromium_driver()
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def poll(check: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T | None:
    """Call ``check`` until it returns something other than None, or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@dataclass(frozen=True)
class Box:
    """A rectangle in CSS pixels of the page."""

    left: float
    top: float
    width: float
    height: float


def element_box(driver: Any, selector: str) -> Box | None:
    """The bounding box of the first visible element matching the CSS selector."""
    rect = driver.execute_script(
        "const e = [...document.querySelectorAll(arguments[0])]"
        "  .find(e => e.getBoundingClientRect().width > 0);"
        "return e ? e.getBoundingClientRect().toJSON() : null;",
        selector,
    )
    if not rect:
        return None
    return Box(rect["left"], rect["top"], rect["width"], rect["height"])


def screenshot(driver: Any) -> np.ndarray:
    """The page as a luminance array (rows x columns, 0-255), in device pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    return np.asarray(image, dtype=np.float32)


def crop(pixels: np.ndarray, box: Box, scale: float) -> np.ndarray:
    """The part of the screenshot under ``box`` (CSS pixels times the device pixel ratio)."""
    top, left = round(box.top * scale), round(box.left * scale)
    bottom, right = round((box.top + box.height) * scale), round((box.left + box.width) * scale)
    return pixels[max(top, 0) : bottom, max(left, 0) : right]


def patch_mean(pixels: np.ndarray, row: float, column: float, half: float) -> float:
    """Mean luminance of the square of half-size ``half`` centred on (row, column)."""
    r0, r1 = round(row - half), round(row + half) + 1
    c0, c1 = round(column - half), round(column + half) + 1
    return float(pixels[max(r0, 0) : r1, max(c0, 0) : c1].mean())


def save(driver: Any, path: Path) -> Path:
    """Save a PNG screenshot (kept in the test's tmp folder for a human to look at)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
