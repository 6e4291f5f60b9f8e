"""Header parsing at ingest: pydicom reads the header only; the bytes are never re-encoded."""

from __future__ import annotations

import logging
import struct
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pacs.core.charsets import LATIN1, read_text_as
from pacs.core.errors import InvalidDicom, MissingUniqueKey, RefusedInstance
from pacs.core.ids import is_acceptable_uid
from pacs.core.model import InstanceSummary

log = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
MAX_HEADER_BYTES = 4 * 1024 * 1024


IMPLEMENTATION_VERSION_NAME = "PACS_010"


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def encode_file_meta(
    sop_class_uid: str, sop_uid: str, transfer_syntax: str, source_ae: str = ""
) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (PS3.10 7.1), written directly:
    this runs for every received instance, and pydicom's general writer is ten times slower."""
    body = _meta_element(0x0001, b"OB", b"\x00\x01")
    body += _meta_element(0x0002, b"UI", _padded(sop_class_uid, b"\x00"))
    body += _meta_element(0x0003, b"UI", _padded(sop_uid, b"\x00"))
    body += _meta_element(0x0010, b"UI", _padded(transfer_syntax, b"\x00"))
    body += _meta_element(0x0012, b"UI", _padded(str(PYDICOM_IMPLEMENTATION_UID), b"\x00"))
    body += _meta_element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION_NAME, b" "))
    if source_ae:
        body += _meta_element(0x0016, b"AE", _padded(source_ae.strip()[:16], b" "))
    return PREAMBLE + _meta_element(0x0000, b"UL", struct.pack("<I", len(body))) + body


def build_part10(
    dataset_bytes: bytes,
    sop_class_uid: str,
    sop_uid: str,
    transfer_syntax: str,
    source_ae: str = "",
) -> bytes:
    """Preamble + File Meta Information + the data set exactly as received."""
    return encode_file_meta(sop_class_uid, sop_uid, transfer_syntax, source_ae) + dataset_bytes


def _text(ds: Dataset, keyword: str) -> str:
    """The value as text, '' when absent or undecodable (we are tolerant of what we receive)."""
    try:
        value = ds.get(keyword)
    except Exception:  # malformed value: keep the instance, lose the column value
        log.debug("cannot decode %s", keyword, exc_info=True)
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip().replace("\x00", "")


def _int(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def _uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword).rstrip("\x00 ")
    if not is_acceptable_uid(value):
        raise MissingUniqueKey(f"{keyword} is missing or invalid ({value[:70]!r})")
    return value


def normalize_time(value: str) -> str:
    """Comparable form of a TM value: without colons, at least six digits."""
    text = value.replace(":", "").strip()
    if not text:
        return ""
    whole, _, fraction = text.partition(".")
    whole = whole.ljust(6, "0")
    return f"{whole}.{fraction}" if fraction else whole


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) as the data set was read."""
    implicit, little = ds.original_encoding
    return bool(implicit), little is not False


def _guess_transfer_syntax(ds: Dataset) -> str:
    implicit, little = _encoding(ds)
    if not little:
        return str(ExplicitVRBigEndian)
    return str(ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)


_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_LONG_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"OD",
    b"OL",
    b"OV",
    b"UN",
    b"UT",
    b"UC",
    b"UR",
    b"SQ",
    b"SV",
    b"UV",
}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def check_pixel_data_complete(raw: bytes, offset: int, ds: Dataset) -> None:
    """Refuse a data set whose Pixel Data is shorter than it declares (a truncated upload)."""
    if offset + 8 > len(raw) or ds.original_encoding == (None, None):
        return
    implicit, little = _encoding(ds)
    order = "<" if little else ">"
    group, element = struct.unpack_from(order + "HH", raw, offset)
    if (group, element) not in _PIXEL_TAGS:
        return
    if implicit:
        (length,) = struct.unpack_from(order + "I", raw, offset + 4)
        header = 8
    elif raw[offset + 4 : offset + 6] in _LONG_VRS:
        if offset + 12 > len(raw):
            raise InvalidDicom("Pixel Data element is truncated")
        (length,) = struct.unpack_from(order + "I", raw, offset + 8)
        header = 12
    else:
        (length,) = struct.unpack_from(order + "H", raw, offset + 6)
        header = 8
    if length == 0xFFFFFFFF:
        if raw.rfind(_SEQUENCE_DELIMITER, offset) == -1:
            raise InvalidDicom("encapsulated Pixel Data has no sequence delimiter (truncated)")
    elif offset + header + length > len(raw):
        present = len(raw) - offset - header
        raise InvalidDicom(f"Pixel Data is truncated: {length} bytes declared, {present} present")


def read_header(raw: bytes) -> tuple[Dataset, int]:
    """Parse the header (everything before Pixel Data); returns it and where it ends."""
    stream = BytesIO(raw)
    try:
        ds = dcmread(stream, stop_before_pixels=True, force=True)
    except (InvalidDicomError, EOFError) as exc:
        raise InvalidDicom(f"not a DICOM data set: {exc}") from exc
    except Exception as exc:  # pydicom raises many types on hostile input
        raise InvalidDicom(f"malformed DICOM data set: {type(exc).__name__}: {exc}") from exc
    return ds, stream.tell()


def ensure_part10(raw: bytes, ds: Dataset) -> bytes:
    """Give a bare data set (no preamble/File Meta) a File Meta header; bytes otherwise kept."""
    if raw[128:132] == b"DICM":
        return raw
    sop_class = _uid(ds, "SOPClassUID")
    sop_uid = _uid(ds, "SOPInstanceUID")
    return build_part10(raw, sop_class, sop_uid, _guess_transfer_syntax(ds))


def check_image_size(ds: Dataset, max_pixels: int) -> None:
    """Refuse declared image sizes beyond the configured limit."""
    rows = _int(ds, "Rows") or 0
    columns = _int(ds, "Columns") or 0
    frames = _int(ds, "NumberOfFrames") or 1
    samples = _int(ds, "SamplesPerPixel") or 1
    if rows < 0 or columns < 0 or frames < 0:
        raise RefusedInstance("negative image dimensions")
    if max_pixels and rows * columns * max(frames, 1) * max(samples, 1) > max_pixels:
        raise RefusedInstance(
            f"declared image size {rows}x{columns}x{frames}x{samples} exceeds the limit "
            f"of {max_pixels} samples"
        )


def summarize(
    raw: bytes, *, max_pixels: int = 0, charset: str = LATIN1
) -> tuple[InstanceSummary, bytes]:
    """Parse and validate a Part 10 file (or bare data set); returns its summary and the
    Part 10 bytes to store (``raw`` itself unless a File Meta header had to be added).
    Text is read as ``charset`` when the data set declares no character set."""
    ds, header_end = read_header(raw)
    read_text_as(ds, charset)
    sop_uid = _uid(ds, "SOPInstanceUID")
    study_uid = _uid(ds, "StudyInstanceUID")
    series_uid = _uid(ds, "SeriesInstanceUID")
    sop_class = _text(ds, "SOPClassUID")
    if not sop_class and "MediaStorageSOPClassUID" in getattr(ds, "file_meta", {}):
        sop_class = str(ds.file_meta.MediaStorageSOPClassUID)
    if not is_acceptable_uid(sop_class):
        raise MissingUniqueKey(f"SOPClassUID is missing or invalid ({sop_class[:70]!r})")
    check_image_size(ds, max_pixels)
    meta_for_syntax: Any = getattr(ds, "file_meta", None)
    if (
        meta_for_syntax is None
        or meta_for_syntax.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian
    ):
        check_pixel_data_complete(raw, header_end, ds)
    part10 = ensure_part10(raw, ds)
    if part10 is not raw:
        header_end += len(part10) - len(raw)
    meta: Any = getattr(ds, "file_meta", None)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not transfer_syntax:
        transfer_syntax = _guess_transfer_syntax(ds)
    header = part10[:header_end] if header_end <= MAX_HEADER_BYTES else b""
    summary = InstanceSummary(
        patient_id=_text(ds, "PatientID"),
        issuer=_text(ds, "IssuerOfPatientID"),
        patient_name=_text(ds, "PatientName"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        study_uid=study_uid,
        study_date=_text(ds, "StudyDate"),
        study_time=normalize_time(_text(ds, "StudyTime")),
        accession=_text(ds, "AccessionNumber"),
        study_id=_text(ds, "StudyID"),
        study_description=_text(ds, "StudyDescription"),
        referring=_text(ds, "ReferringPhysicianName"),
        series_uid=series_uid,
        modality=_text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part=_text(ds, "BodyPartExamined"),
        series_date=_text(ds, "SeriesDate"),
        series_time=normalize_time(_text(ds, "SeriesTime")),
        sop_uid=sop_uid,
        sop_class_uid=sop_class,
        instance_number=_int(ds, "InstanceNumber"),
        transfer_syntax=transfer_syntax,
        number_of_frames=_int(ds, "NumberOfFrames") or 1,
        header=header,
    )
    return summary, part10


def parse_stored_header(header: bytes, charset: str = LATIN1) -> Dataset:
    """Read back a header kept in the index (a Part 10 file cut before Pixel Data); its text
    read as ``charset`` when it declares no character set."""
    return read_text_as(dcmread(BytesIO(header), stop_before_pixels=True, force=True), charset)
