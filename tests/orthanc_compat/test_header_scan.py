"""The header scanner reads the same values as pydicom, or gives up (None)."""

from __future__ import annotations

import io

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from orthanc_compat.header_scan import from_dataset, scan
from pacs.core.dicom_header import parse_stored_header, summarize
from tests.factories import make_image, to_bytes

KEYWORDS = (
    "InstitutionName",
    "Manufacturer",
    "OtherPatientIDs",
    "ImageOrientationPatient",
    "NumberOfSlices",
    "ImagesInAcquisition",
    "RequestingPhysician",
    "StationName",
)


def _header(ds: Dataset) -> bytes:
    summary, _ = summarize(to_bytes(ds))
    return summary.header


@pytest.mark.parametrize("syntax", [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)])
@pytest.mark.parametrize("undefined_lengths", [False, True])
def test_scan_matches_pydicom(syntax: str, undefined_lengths: bool) -> None:
    ds = make_image(
        transfer_syntax=syntax,
        charset="ISO_IR 192",
        InstitutionName="Bệnh viện Bạch Mai",
        Manufacturer="ACME ",
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        NumberOfSlices=40,
        ImagesInAcquisition="12",
        RequestingPhysician="Lê^Thị C",
    )
    item = Dataset()
    item.CodeValue = "X"
    inner = Dataset()
    inner.CodeMeaning = "deep"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item, item])  # (0008,1032), between wanted tags
    if undefined_lengths:
        ds.ProcedureCodeSequence.is_undefined_length = True
        for entry in ds.ProcedureCodeSequence:
            entry.is_undefined_length_sequence_item = True
    header = _header(ds)
    scanned = scan(header, KEYWORDS)
    assert scanned is not None
    assert scanned == from_dataset(parse_stored_header(header), KEYWORDS)
    assert scanned["InstitutionName"] == "Bệnh viện Bạch Mai"
    assert scanned["RequestingPhysician"] == "Lê^Thị C"
    assert scanned["NumberOfSlices"] == "40"
    assert "StationName" not in scanned


def test_scan_gives_up_on_what_it_does_not_read() -> None:
    big = make_image(transfer_syntax=str(ExplicitVRBigEndian), InstitutionName="X")
    buffer = io.BytesIO()
    big.save_as(buffer, implicit_vr=False, little_endian=False, enforce_file_format=True)
    assert scan(buffer.getvalue(), KEYWORDS) is None
    assert scan(b"not dicom", KEYWORDS) is None
    header = _header(make_image(InstitutionName="X"))
    assert scan(header[:200], KEYWORDS) is None  # truncated
