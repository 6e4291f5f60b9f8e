"""DICOM to 8-bit display image and model input: LUTs, windows, photometric, codecs, frames."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from ai_models.card import DicomWindow, InputContract, Scaling
from ai_models.preprocess import UnsupportedImage, display_image, model_input
from tests.factories import make_radiograph, to_bytes

PERCENTILE = DicomWindow(method="percentile", low=0.5, high=99.5)


def radiograph(pixels: np.ndarray, **tags: Any) -> Dataset:
    """A CR data set holding these 16-bit pixels (one frame or several)."""
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    rows, columns = pixels.shape[-2:]
    ds = make_radiograph(rows=rows, columns=columns, **tags)
    ds.BitsStored, ds.HighBit = 16, 15
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def reread(ds: Dataset) -> Dataset:
    """The data set as a receiver sees it: written as Part 10 and read back."""
    return dcmread(io.BytesIO(to_bytes(ds)))


def ramp(rows: int = 32, columns: int = 32, top: int = 4000) -> np.ndarray:
    return np.linspace(0, top, rows * columns).reshape(rows, columns).astype(np.uint16)


def test_full_range_when_no_window_and_monochrome1_inverted() -> None:
    pixels = ramp()
    mono2 = display_image(reread(radiograph(pixels)))
    mono1 = display_image(reread(radiograph(pixels, PhotometricInterpretation="MONOCHROME1")))
    assert mono2.dtype == np.uint8 and mono2.shape == (32, 32)
    assert (mono2[0, 0], mono2[-1, -1]) == (0, 255)
    assert np.abs(mono1.astype(int) + mono2.astype(int) - 255).max() <= 1  # rounding of .5
    assert (mono1[0, 0], mono1[-1, -1]) == (255, 0)


def test_modality_lut_rescale_then_window_in_rescaled_units() -> None:
    pixels = np.array([[0, 250, 500, 750, 1000]], dtype=np.uint16)  # -1000 .. 1000 after rescale
    ds = radiograph(
        pixels, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=1000
    )
    shown = display_image(reread(ds))
    # PS3.3 C.11.2.1.2.1 linear window: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    expected = [
        np.clip((x - (0 - 0.5)) / 999 + 0.5, 0, 1) * 255 for x in (-1000, -500, 0, 500, 1000)
    ]
    assert shown[0].tolist() == [round(v) for v in expected]
    assert (shown[0, 0], shown[0, 2], shown[0, 4]) == (0, 128, 255)


def test_first_of_several_windows_is_used() -> None:
    pixels = np.array([[100, 200, 300]], dtype=np.uint16)
    ds = radiograph(pixels, WindowCenter=[200, 1000], WindowWidth=[200, 10])
    assert display_image(reread(ds))[0].tolist() == [0, 128, 255]


def test_voi_lut_sequence() -> None:
    pixels = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    ds = radiograph(pixels)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item.add_new(0x00283006, "US", [255, 0, 128, 64])  # LUT Data
    ds.VOILUTSequence = Sequence([item])
    assert display_image(reread(ds))[0].tolist() == [255, 0, 128, 64]


def test_percentile_window() -> None:
    pixels = ramp(100, 100, top=9999)
    pixels[0, 0] = 65535  # one hot pixel must not squash the rest
    shown = display_image(reread(radiograph(pixels)), PERCENTILE)
    values = np.asarray(pixels, dtype=np.float64)
    low, high = np.percentile(values, [0.5, 99.5])
    expected = np.round(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(shown, expected)
    assert shown[0, 0] == 255 and 120 <= shown[50, 50] <= 135


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_lossless_syntaxes_decode_to_the_same_image(syntax: str) -> None:
    ds = radiograph(ramp(64, 48, top=60000) // 4 * 4)
    original = display_image(reread(ds))
    ds.compress(syntax)
    received = reread(ds)
    assert received.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(display_image(received), original)


def test_jpeg_baseline_is_decoded() -> None:
    grey = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=95)
    ds = radiograph(grey.astype(np.uint16), transfer_syntax=str(JPEGBaseline8Bit))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    shown = display_image(reread(ds), DicomWindow(method="percentile", low=0, high=100))
    assert shown.shape == (64, 64)
    assert np.abs(shown.astype(int) - grey.astype(int)).mean() < 2.0


def test_multi_frame_gives_the_first_frame() -> None:
    frames = np.stack([ramp(16, 16, 1000), ramp(16, 16, 1000)[::-1], np.zeros((16, 16))])
    shown = display_image(reread(radiograph(frames)))
    assert shown.shape == (16, 16)
    assert (shown[0, 0], shown[-1, -1]) == (0, 255)


def test_no_pixel_data_is_unsupported() -> None:
    ds = radiograph(ramp())
    del ds.PixelData
    with pytest.raises(UnsupportedImage, match="no pixel data"):
        display_image(ds)


def test_corrupt_compressed_pixel_data_is_unsupported() -> None:
    ds = radiograph(ramp(), transfer_syntax=str(JPEGBaseline8Bit))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([b"\xff\xd8 not a jpeg at all \xff\xd9"])
    ds["PixelData"].VR = "OB"
    with pytest.raises(UnsupportedImage, match="cannot be decoded"):
        display_image(reread(ds))


def test_rgb_image_passes_through() -> None:
    ds = radiograph(ramp(8, 8))
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    assert np.array_equal(display_image(reread(ds)), rgb)


def contract(layout: str = "NHWC", channels: int = 3, **kwargs: Any) -> InputContract:
    return InputContract(
        height=4,
        width=6,
        channels=channels,
        layout=layout,
        input_name="input",
        resize=kwargs.pop("resize", "nearest"),
        scaling=kwargs.pop("scaling", Scaling(divisor=127.5, mean=(1.0,), std=(1.0,))),
        **kwargs,
    )


def test_model_input_layout_channels_scaling_and_size() -> None:
    grey = np.full((40, 60), 255, dtype=np.uint8)
    grey[:20] = 0
    nhwc = model_input(grey, contract())
    assert nhwc.shape == (4, 6, 3) and nhwc.dtype == np.float32
    assert np.all(nhwc[:2] == -1.0) and np.all(nhwc[2:] == 1.0)
    nchw = model_input(grey, contract(layout="NCHW"))
    assert nchw.shape == (3, 4, 6) and np.array_equal(nchw, nhwc.transpose(2, 0, 1))
    imagenet = Scaling(divisor=255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    normalised = model_input(grey, contract(scaling=imagenet))
    assert normalised[3, 0].tolist() == pytest.approx(
        [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rel=1e-5
    )


def test_model_input_colour_to_grey_and_rgba() -> None:
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 7
    grey = model_input(rgba, contract(channels=1, scaling=Scaling()))
    assert grey.shape == (4, 6, 1)
    assert grey[0, 0, 0] == pytest.approx(round(255 * 0.587) / 255, abs=1 / 255)


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), dtype=np.uint16), np.zeros((4, 4, 2), dtype=np.uint8), np.zeros(5, np.uint8)],
)
def test_model_input_refuses_what_is_not_an_8bit_image(image: np.ndarray) -> None:
    with pytest.raises(UnsupportedImage):
        model_input(image, contract())


def test_dicom_files_decoded_from_disk(tmp_path: Path) -> None:
    ds = radiograph(ramp())
    path = tmp_path / "x.dcm"
    path.write_bytes(to_bytes(ds))
    assert display_image(dcmread(path)).shape == (32, 32)


def test_malformed_modality_lut_is_unsupported() -> None:
    ds = radiograph(ramp())
    item = Dataset()
    item.LUTDescriptor = None
    item.ModalityLUTType = "US"
    item.add_new(0x00283006, "US", [0, 1])
    ds.ModalityLUTSequence = Sequence([item])
    with pytest.raises(UnsupportedImage, match="malformed image attributes"):
        display_image(ds)


@pytest.mark.parametrize(
    ("window", "tags"),
    [
        (PERCENTILE, {"PhotometricInterpretation": "MONOCHROME1"}),
        (PERCENTILE, {"RescaleSlope": 0.5, "RescaleIntercept": -1024}),
        (DicomWindow(method="image"), {"WindowCenter": 900, "WindowWidth": 700}),
        (DicomWindow(method="image"), {"RescaleSlope": -1, "RescaleIntercept": 0}),
    ],
)
def test_value_table_equals_per_pixel_computation(
    window: DicomWindow, tags: dict[str, Any]
) -> None:
    from ai_models.preprocess import _grey_to_8bit, _values_to_8bit

    rng = np.random.default_rng(5)
    pixels = rng.gamma(2.0, 400.0, size=(97, 61)).astype(np.uint16)
    ds = reread(radiograph(pixels, **tags))
    stored = ds.pixel_array
    assert np.array_equal(
        _grey_to_8bit(ds, stored, window, True), _values_to_8bit(ds, stored, window, True)
    )
