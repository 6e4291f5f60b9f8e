"""Orthanc's main tags scanned from a stored header that declares no character set: read
with the default encoding, as pydicom reads them."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from orthanc_compat.header_scan import from_dataset, scan
from pacs.core.dicom_header import parse_stored_header, summarize
from tests.factories import make_image, to_bytes

KEYWORDS = ("PatientName", "StudyDescription", "PatientID")


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100"])
def test_scan_reads_undeclared_text_with_the_default(syntax: str, charset: str) -> None:
    ds = make_image(
        transfer_syntax=str(syntax),
        patient_name="Lê^Thị Hồng".encode(),  # type: ignore[arg-type]  # written as is
        study_description="Siêu âm".encode(),  # type: ignore[arg-type]
    )
    summary, _ = summarize(to_bytes(ds))
    scanned = scan(summary.header, KEYWORDS, charset)
    assert scanned == from_dataset(parse_stored_header(summary.header, charset), KEYWORDS)
    expected = "Lê^Thị Hồng".encode()
    assert scanned["PatientName"] == expected.decode(
        "utf-8" if charset.endswith("192") else "latin-1"
    )
