"""Implicit to Explicit VR Little Endian by rewriting element headers: pydicom reads back
the same data set, with the VRs of the data dictionary."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomweb.explicit_vr import implicit_to_explicit
from dicomweb.header_json import Unsupported
from pacs.core.dicom_header import summarize
from tests.factories import make_image, to_bytes


def _differences(a: Dataset, b: Dataset, path: str = "") -> list[str]:
    """Elements whose values differ (group lengths aside; UN values compared as bytes)."""
    keys_a = [element.tag for element in a if element.tag.element != 0]
    keys_b = [element.tag for element in b if element.tag.element != 0]
    if keys_a != keys_b:
        return [f"{path}: {sorted(set(keys_a) ^ set(keys_b))}"]
    found = []
    for key in keys_a:
        left, right = a[key], b[key]
        if left.VR == "SQ":
            if len(left.value) != len(right.value):
                found.append(f"{path}{key}: {len(left.value)} vs {len(right.value)} items")
                continue
            for i, (x, y) in enumerate(zip(left.value, right.value, strict=True)):
                found += _differences(x, y, f"{path}{key}[{i}]/")
        elif left.value != right.value and "UN" not in (left.VR, right.VR):
            found.append(f"{path}{key}: {left.value!r} vs {right.value!r}")
    return found


def _implicit_rich() -> bytes:
    ds = make_image(
        transfer_syntax=str(ImplicitVRLittleEndian),
        charset="ISO_IR 192",
        patient_name="Nguyễn^Văn A",
        PixelSpacing=["0.5", "0.5"],
        RescaleIntercept="-1024",
    )
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.add_new(0x00091010, "LO", "PRIVATE")
    item.add_new(0x00091011, "UL", 7)
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3.4"
    item.ReferencedImageSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.ReferencedStudySequence = Sequence([])
    ds.PixelRepresentation = 1
    ds.SmallestImagePixelValue = -5  # US or SS: SS here
    return to_bytes(ds)


def test_rewrite_reads_back_the_same() -> None:
    raw = _implicit_rich()
    out = implicit_to_explicit(raw)
    before, after = dcmread(BytesIO(raw)), dcmread(BytesIO(out))
    assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert _differences(before, after) == []
    assert after["PixelData"].VR == "OW"
    assert after["SmallestImagePixelValue"].VR == "SS" and after.SmallestImagePixelValue == -5
    assert after.PatientName == "Nguyễn^Văn A"
    assert after.file_meta.MediaStorageSOPInstanceUID == before.file_meta.MediaStorageSOPInstanceUID


def test_truncated_input_is_declined() -> None:
    with pytest.raises(Unsupported):
        implicit_to_explicit(_implicit_rich()[:-10])


def test_real_implicit_samples(shared_data: Path) -> None:
    rewritten = 0
    for path in sorted((shared_data / "dicom-samples").rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".csv", ".txt", ".json"):
            continue
        try:
            summary, part10 = summarize(path.read_bytes())
        except Exception:  # refused at ingest
            continue
        if summary.transfer_syntax != str(ImplicitVRLittleEndian):
            continue
        try:
            out = implicit_to_explicit(part10)
        except Unsupported:
            continue
        assert _differences(dcmread(BytesIO(part10)), dcmread(BytesIO(out))) == [], path.name
        rewritten += 1
    assert rewritten >= 20
