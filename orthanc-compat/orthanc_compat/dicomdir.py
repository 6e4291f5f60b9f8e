"""A DICOMDIR (PS3.10 Basic Directory, PS3.3 F.5) built from what the index keeps.

No instance is read: patient, study, series and image records take their keys from index
columns, so the DICOMDIR of any study is written before its files are streamed. Records are
encoded with pydicom; the offsets between records (all 4-byte UL values, so they do not
change the encoded lengths) are computed from a first encoding, as pydicom's ``FileSet``
does, without its per-instance staging files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MEDIA_STORAGE_DIRECTORY = UID("1.2.840.10008.1.3.10")
UID_ROOT = "1.2.826.0.1.3680043.10.1137."
_ITEM_HEADER = 8  # item tag and length

PATIENT_KEYS = ("PatientID", "PatientName")
STUDY_KEYS = (
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "StudyInstanceUID",
    "StudyID",
    "AccessionNumber",
)
SERIES_KEYS = ("Modality", "SeriesInstanceUID", "SeriesNumber")


@dataclass
class ImageEntry:
    """One file of the media: its path components and the keys of its records."""

    file_id: tuple[str, ...]
    sop_class_uid: str
    sop_uid: str
    transfer_syntax: str
    instance_number: Any
    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]


@dataclass
class _Node:
    record: Dataset
    children: list[_Node] = field(default_factory=list)
    offset: int = 0


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _record(kind: str, keys: Iterable[str], values: dict[str, Any]) -> Dataset:
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    texts = {key: _text(values.get(key)) for key in keys}
    if not all(text.isascii() for text in texts.values()):
        record.SpecificCharacterSet = "ISO_IR 192"
    for key, text in texts.items():
        setattr(record, key, text)
    return record


def _image_record(entry: ImageEntry) -> Dataset:
    record = _record("IMAGE", (), {})
    record.ReferencedFileID = list(entry.file_id)
    record.ReferencedSOPClassUIDInFile = entry.sop_class_uid
    record.ReferencedSOPInstanceUIDInFile = entry.sop_uid
    record.ReferencedTransferSyntaxUIDInFile = entry.transfer_syntax
    record.InstanceNumber = _text(entry.instance_number)
    return record


def _tree(entries: Iterable[ImageEntry]) -> list[_Node]:
    """Patients > studies > series > images, in the order the entries come."""
    patients: dict[str, _Node] = {}
    studies: dict[str, _Node] = {}
    series: dict[str, _Node] = {}
    for entry in entries:
        patient_key = _text(entry.patient.get("PatientID"))
        if patient_key not in patients:
            patients[patient_key] = _Node(_record("PATIENT", PATIENT_KEYS, entry.patient))
        study_key = _text(entry.study.get("StudyInstanceUID"))
        if study_key not in studies:
            studies[study_key] = _Node(_record("STUDY", STUDY_KEYS, entry.study))
            patients[patient_key].children.append(studies[study_key])
        series_key = _text(entry.series.get("SeriesInstanceUID"))
        if series_key not in series:
            series[series_key] = _Node(_record("SERIES", SERIES_KEYS, entry.series))
            studies[study_key].children.append(series[series_key])
        series[series_key].children.append(_Node(_image_record(entry)))
    return list(patients.values())


def _depth_first(nodes: list[_Node]) -> Iterable[_Node]:
    for node in nodes:
        yield node
        yield from _depth_first(node.children)


def _link(nodes: list[_Node]) -> None:
    """Set each record's offsets to its next sibling and its first child (0: none)."""
    for position, node in enumerate(nodes):
        following = nodes[position + 1] if position + 1 < len(nodes) else None
        node.record.OffsetOfTheNextDirectoryRecord = following.offset if following else 0
        first_child = node.children[0].offset if node.children else 0
        node.record.OffsetOfReferencedLowerLevelDirectoryEntity = first_child
        _link(node.children)


def _encoded_length(record: Dataset) -> int:
    buffer = DicomFileLike(BytesIO())
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, record)
    return buffer.tell()


def _encode(ds: Dataset) -> bytes:
    raw = BytesIO()
    buffer = DicomFileLike(raw)
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, ds.file_meta, enforce_standard=True)
    write_dataset(buffer, ds)
    return raw.getvalue()


def build_dicomdir(entries: Iterable[ImageEntry], file_set_id: str = "PACS") -> bytes:
    """The DICOMDIR file (Explicit VR Little Endian) listing every entry."""
    roots = _tree(entries)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(prefix=UID_ROOT)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = file_set_id[:16]
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = []
    offset = len(_encode(ds))  # the first item starts where the empty sequence ends
    records = []
    for node in _depth_first(roots):
        node.offset = offset
        offset += _ITEM_HEADER + _encoded_length(node.record)
        records.append(node.record)
    _link(roots)
    if roots:
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = roots[0].offset
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = roots[-1].offset
    ds.DirectoryRecordSequence = records
    return _encode(ds)
