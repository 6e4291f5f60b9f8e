"""compress_part10's outputs (a cold tier's copies) come back uncompressed through the
DICOMweb transcoder, pixel for pixel: signed CT, RGB stored planar, multi-frame."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomweb.negotiate import EXPLICIT_LE, IMPLICIT_LE
from dicomweb.transcode import transcode
from pacs.core.lossless import CODECS, compress_part10
from tests.core.test_lossless import image, phantom
from tests.factories import to_bytes


def _signed_ct() -> Dataset:
    return image(phantom((96, 80), -1024, 3071).astype(np.int16), bits_stored=16)


def _rgb_planar() -> Dataset:
    grey = phantom((48, 64), 0, 255).astype(np.uint8)
    return image(
        np.stack([grey, 255 - grey, grey // 3], -1), bits_stored=8, photometric="RGB", planar=1
    )


def _multiframe() -> Dataset:
    return image(phantom((5, 40, 50), 0, 4095).astype(np.uint16), bits_stored=12)


@pytest.mark.parametrize("target", [EXPLICIT_LE, IMPLICIT_LE])
@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("make", [_signed_ct, _rgb_planar, _multiframe])
def test_lossless_copies_transcode_to_the_original_pixels(
    make: Callable[[], Dataset], codec: str, target: str
) -> None:
    original = make()
    result = compress_part10(to_bytes(original), codec=codec)
    assert result is not None
    back = dcmread(BytesIO(transcode(result.data, target, result.transfer_syntax)))
    assert back.file_meta.TransferSyntaxUID == target
    assert back.SOPInstanceUID == original.SOPInstanceUID
    expected, pixels = original.pixel_array, back.pixel_array
    assert pixels.dtype == expected.dtype and pixels.shape == expected.shape
    assert np.array_equal(pixels, expected)
