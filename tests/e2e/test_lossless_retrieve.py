"""A cold tier's JPEG-LS lossless copy retrieved by DCMTK clients that take only
uncompressed syntaxes (getscu, movescu to storescp): the server decompresses on the way and
the pixels are the original ones; a client that takes JPEG-LS gets the stored bytes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from pacs.core.lossless import compress_part10
from tests.conftest import RunningServer, free_port, wait_for_port
from tests.core.test_lossless import image, phantom
from tests.e2e.helpers import (
    HOST,
    SERVER_AE,
    final_counts,
    getscu_command,
    modality_config,
    require_dcmtk,
    run,
    serve,
    store,
    study_keys,
)
from tests.factories import new_uid, to_bytes

pytestmark = pytest.mark.integration

DEST_AE = "LOSSLESS-DEST"


@dataclass
class Stored:
    """The instance as stored (JPEG-LS) and the original it came from."""

    study_uid: str
    sop_uid: str
    original: Dataset
    compressed: bytes


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return require_dcmtk("getscu", "movescu", "storescp")


@pytest.fixture(scope="module")
def dest_port() -> int:
    return free_port()


@pytest.fixture(scope="module", params=["fast", "pynetdicom"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tools: dict[str, str],
    dest_port: int,
) -> Iterator[RunningServer]:
    """A server on the lean DIMSE path, and one on pynetdicom's."""
    options = "fast_store = true" if request.param == "fast" else "fast_store = false"
    config = modality_config("dest", DEST_AE, dest_port)
    with serve(tmp_path_factory, f"ll-{request.param}", config, options) as running:
        yield running


@pytest.fixture(scope="module")
def stored(node: RunningServer) -> Stored:
    """A signed 12-bit CT-like slice, compressed by compress_part10 and stored as JPEG-LS."""
    original = image(phantom((128, 96), -1024, 2047).astype(np.int16), bits_stored=12)
    original.StudyInstanceUID = new_uid()
    result = compress_part10(to_bytes(original))
    assert result is not None and result.transfer_syntax == str(JPEGLSLossless)
    assert store(node.dimse_port, [dcmread(BytesIO(result.data))]) == [0]
    return Stored(
        str(original.StudyInstanceUID), str(original.SOPInstanceUID), original, result.data
    )


def _getscu(tools: dict[str, str], out: Path, study: str, *options: str) -> list[str]:
    return [
        *getscu_command(tools["getscu"], out, *study_keys(study), *options, aet="LL-GETSCU"),
        HOST,
    ]


def _received(out: Path) -> Dataset:
    files = list(out.iterdir())
    assert len(files) == 1, files
    return dcmread(files[0])


def _assert_original_pixels(received: Dataset, original: Dataset) -> None:
    pixels, expected = received.pixel_array, original.pixel_array
    assert pixels.dtype == expected.dtype and pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)
    assert received.SOPInstanceUID == original.SOPInstanceUID


@pytest.mark.parametrize("options", [[], ["+xi"]], ids=["uncompressed", "implicit-only"])
def test_getscu_uncompressed_only_gets_the_original_pixels(
    stored: Stored,
    node: RunningServer,
    tools: dict[str, str],
    tmp_path: Path,
    options: list[str],
) -> None:
    result = run([*_getscu(tools, tmp_path, stored.study_uid, *options), str(node.dimse_port)])
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert final_counts(text).get("Completed") == 1, text[-3000:]
    received = _received(tmp_path)
    assert received.file_meta.TransferSyntaxUID != JPEGLSLossless
    assert not received.file_meta.TransferSyntaxUID.is_compressed
    _assert_original_pixels(received, stored.original)


def test_getscu_taking_jpeg_ls_gets_the_stored_bytes(
    stored: Stored, node: RunningServer, tools: dict[str, str], tmp_path: Path
) -> None:
    """No decoding when the stored syntax is accepted (the server never encodes JPEG-LS)."""
    result = run([*_getscu(tools, tmp_path, stored.study_uid, "+xt"), str(node.dimse_port)])
    assert result.returncode == 0, result.stderr[-3000:]
    received = _received(tmp_path)
    assert received.file_meta.TransferSyntaxUID == JPEGLSLossless
    _assert_original_pixels(received, stored.original)


def _storescp(
    tools: dict[str, str], port: int, out: Path, *options: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [tools["storescp"], "-aet", DEST_AE, *options, "-od", str(out), "-ta", "20", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=10, process=process)
    return process


@pytest.mark.parametrize("accept", ["uncompressed", "all"])
def test_movescu_to_storescp(
    stored: Stored,
    node: RunningServer,
    tools: dict[str, str],
    tmp_path: Path,
    dest_port: int,
    accept: str,
) -> None:
    """storescp taking only uncompressed syntaxes (its default) gets the instance decoded;
    one taking everything (+xa) gets it as stored."""
    receiver = _storescp(tools, dest_port, tmp_path, *(["+xa"] if accept == "all" else []))
    try:
        result = run(
            [
                tools["movescu"],
                "-d",
                "-S",
                "-aet",
                "LL-MOVESCU",
                "-aec",
                SERVER_AE,
                "-aem",
                DEST_AE,
                "-to",
                "20",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={stored.study_uid}",
                HOST,
                str(node.dimse_port),
            ]
        )
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    assert final_counts(text) == {"Remaining": 0, "Completed": 1, "Failed": 0, "Warning": 0}
    received = _received(tmp_path)
    expected = ExplicitVRLittleEndian if accept == "uncompressed" else JPEGLSLossless
    assert received.file_meta.TransferSyntaxUID == expected
    _assert_original_pixels(received, stored.original)
