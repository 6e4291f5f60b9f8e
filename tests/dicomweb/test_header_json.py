"""The header walker gives the same DICOM JSON as pydicom's ``to_json_dict`` (up to what
the standard leaves open), and declines what it does not handle so pydicom can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomweb.header_json import Unsupported, header_json
from pacs.core.dicom_header import parse_stored_header, summarize
from tests.factories import make_image, to_bytes


def _bulk(tag: int) -> str:
    return f"u/{tag:08X}"


def _reference(header: bytes) -> dict[str, Any]:
    """pydicom's conversion, with the differences the standard allows normalised away."""
    ds = parse_stored_header(header)
    ref = ds.to_json_dict(1024, lambda element: _bulk(int(element.tag)))
    return _normalise({k: v for k, v in ref.items() if not k.startswith("7FE0")})


def _normalise(value: Any) -> Any:
    """Group lengths dropped, "" and null alike, padding inside values trimmed."""
    if isinstance(value, dict):
        return {
            k: _normalise(v) for k, v in value.items() if not (len(k) == 8 and k.endswith("0000"))
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if value == "":
        return None
    return value.strip(" ") if isinstance(value, str) else value


def _header(ds: Dataset) -> tuple[bytes, str]:
    summary, part10 = summarize(to_bytes(ds))
    return summary.header or part10, summary.transfer_syntax


def _rich(syntax: str) -> Dataset:
    ds = make_image(
        transfer_syntax=syntax,
        charset="ISO_IR 192",
        patient_name="Nguyễn^Văn A=阮^文=nguyen",
        ImageType=["ORIGINAL", "PRIMARY", "", "AXIAL"],
        PixelSpacing=["0.703125", "0.703125"],
        WindowCenter=["40", "400"],
        SliceThickness="0.625",
        StudyComments="Ghi chú: phổi bình thường",
        FrameIncrementPointer=0x00181063,
    )
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodeMeaning = "Ngực"
    item.add_new(0x00091010, "LO", "PRIVATE")
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3.4"
    item.ReferencedImageSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([item, Dataset()])
    ds.ReferencedStudySequence = Sequence([])
    ds.add_new(0x00420011, "OB", b"\x00\x01" * 1000)  # bulk at the top level
    ds.add_new(0x00282000, "OB", b"\x07" * 10)  # small: inline
    ds.RealWorldValueFirstValueMapped = 0  # US
    ds.add_new(0x00189219, "SS", [-3, 4])
    ds.add_new(0x00189087, "FD", [1.5, -2.25])
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_same_json_as_pydicom(syntax: str) -> None:
    header, transfer_syntax = _header(_rich(str(syntax)))
    got = header_json(header, transfer_syntax, _bulk)
    assert _normalise(got) == _reference(header)
    assert got["00100010"]["Value"] == [
        {"Alphabetic": "Nguyễn^Văn A", "Ideographic": "阮^文", "Phonetic": "nguyen"}
    ]
    assert got["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", None, "AXIAL"]  # F.2.5: null
    assert got["00420011"] == {"vr": "OB", "BulkDataURI": "u/00420011"}
    assert got["00280030"] == {"vr": "DS", "Value": [0.703125, 0.703125]}
    assert got["00081110"] == {"vr": "SQ", "Value": []}


def test_bulk_values_inside_sequences_stay_inline() -> None:
    ds = make_image()
    item = Dataset()
    item.add_new(0x00282000, "OB", b"\x01" * 2000)
    ds.IconImageSequence = Sequence([item])
    header, syntax = _header(ds)
    got = header_json(header, syntax, _bulk)
    assert "InlineBinary" in got["00880200"]["Value"][0]["00282000"]


def test_what_needs_pydicom_is_declined() -> None:
    header, _ = _header(make_image())
    with pytest.raises(Unsupported):
        header_json(header, str(ExplicitVRBigEndian), _bulk)
    with pytest.raises(Unsupported):
        header_json(header[:-3], str(ExplicitVRLittleEndian), _bulk)  # truncated value
    with pytest.raises(Unsupported):
        header_json(b"\0" * 200, str(ExplicitVRLittleEndian), _bulk)  # not Part 10


def test_real_samples_match_pydicom_or_are_declined(shared_data: Path) -> None:
    """Over every real sample: the walker's JSON equals pydicom's, except where pydicom
    uses its private dictionary (we say UN), or resolves bulk data inside sequences."""
    matched = 0
    for path in sorted((shared_data / "dicom-samples").rglob("*")):
        if not path.is_file() or path.suffix in (".md", ".csv", ".txt", ".json"):
            continue
        try:
            summary, part10 = summarize(path.read_bytes())
            header = summary.header or part10
            reference = _reference(header)
        except Exception:  # refused at ingest, or pydicom cannot convert it either
            continue
        try:
            got = _normalise(header_json(header, summary.transfer_syntax, _bulk))
        except Unsupported:
            continue
        for tag in set(got) | set(reference):
            mine, theirs = got.get(tag), reference.get(tag)
            if mine == theirs or int(tag[:4], 16) % 2 == 1:  # private: VR from pydicom's dict
                continue
            assert mine is not None and mine["vr"] == "SQ", f"{path.name} {tag}"
        matched += 1
    assert matched > 250


def test_a_shared_memo_changes_nothing() -> None:
    """Headers converted with one memo (as for a series) equal those converted alone, even
    when the character set differs between them."""
    first = _rich(str(ExplicitVRLittleEndian))
    second = _rich(str(ExplicitVRLittleEndian))
    second.SpecificCharacterSet = "ISO_IR 100"
    second.PatientName = "Müller^Jürgen"
    second.InstanceNumber = 2
    memo: dict = {}
    for ds in (first, second, first):
        header, syntax = _header(ds)
        assert header_json(header, syntax, _bulk, memo) == header_json(header, syntax, _bulk)
    assert memo


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("declared", ["", "ISO_IR 192"])
def test_the_default_character_set_reads_undeclared_text_as_pydicom_does(
    syntax: str, declared: str
) -> None:
    """UTF-8 text without (0008,0005) (or with an empty one): read as the default given, at
    every depth, by the walker and pydicom alike; Latin-1 keeps every byte."""
    ds = make_image(
        transfer_syntax=str(syntax),
        patient_name="Nguyễn^Văn An".encode(),  # type: ignore[arg-type]  # written as is
        study_description="Chụp ngực".encode(),  # type: ignore[arg-type]
    )
    ds.add_new(0x00080005, "CS", declared or None)
    item = Dataset()
    item.CodeMeaning = "Phổi".encode()
    ds.AnatomicRegionSequence = Sequence([item])
    header, transfer_syntax = _header(ds)
    for charset, name, meaning in (
        ("ISO_IR 192", "Nguyễn^Văn An", "Phổi"),
        (
            "ISO_IR 100",
            "Nguyễn^Văn An".encode().decode("latin-1"),
            "Phổi".encode().decode("latin-1"),
        ),
    ):
        if declared and charset != declared:
            name, meaning = "Nguyễn^Văn An", "Phổi"  # a declared set wins over the default
        got = header_json(header, transfer_syntax, _bulk, charset=charset)
        reference = parse_stored_header(header, charset)
        reference_json = reference.to_json_dict(1024, lambda e: _bulk(int(e.tag)))
        assert _normalise(got) == _normalise(
            {k: v for k, v in reference_json.items() if not k.startswith("7FE0")}
        )
        assert got["00100010"]["Value"] == [{"Alphabetic": name}]
        assert got["00082218"]["Value"][0]["00080104"]["Value"] == [meaning]
        assert summarize(to_bytes(ds), charset=charset)[0].patient_name == name
