"""DICOM test data made in code: CT slices, radiographs, studies, written as Part 10 files."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

PREFIX = "1.2.826.0.1.3680043.10.1137."


def new_uid() -> str:
    """A fresh UID under a test prefix."""
    return str(generate_uid(prefix=PREFIX))


def make_image(
    *,
    sop_class: str = str(CTImageStorage),
    modality: str = "CT",
    rows: int = 16,
    columns: int = 16,
    patient_id: str = "PAT001",
    patient_name: str = "Doe^John",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    study_date: str = "20240115",
    study_time: str = "101500",
    accession: str = "ACC001",
    study_description: str = "CT CHEST",
    series_number: int = 1,
    instance_number: int = 1,
    transfer_syntax: str = str(ExplicitVRLittleEndian),
    charset: str | None = None,
    pixel_seed: int | None = None,
    **extra: Any,
) -> Dataset:
    """One image instance with a small 16-bit pixel matrix."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid or new_uid()
    ds.StudyInstanceUID = study_uid or new_uid()
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.StudyDescription = study_description
    ds.ReferringPhysicianName = "Tran^Thi B"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for key, value in extra.items():
        setattr(ds, key, value)
    rng = np.random.default_rng(pixel_seed if pixel_seed is not None else instance_number)
    ds.PixelData = rng.integers(0, 4096, size=(rows, columns), dtype=np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta = meta
    return ds


def make_radiograph(**kwargs: Any) -> Dataset:
    """A CR chest radiograph."""
    kwargs.setdefault("sop_class", str(ComputedRadiographyImageStorage))
    kwargs.setdefault("modality", "CR")
    kwargs.setdefault("study_description", "CHEST PA")
    kwargs.setdefault("BodyPartExamined", "CHEST")
    return make_image(**kwargs)


def make_series(count: int, **kwargs: Any) -> list[Dataset]:
    """``count`` instances of one series in one study."""
    kwargs.setdefault("study_uid", new_uid())
    kwargs.setdefault("series_uid", new_uid())
    return [make_image(instance_number=n + 1, **kwargs) for n in range(count)]


def make_ct_series(count: int, rows: int = 256, columns: int = 256, **kwargs: Any) -> list[Dataset]:
    """``count`` CT slices of one series with realistic, compressible pixels: a body-like
    ellipse with a smooth gradient, a bone ring, and a little noise (12 bits, unsigned),
    which lossless codecs shrink 2-3 times (uniform noise would not shrink at all)."""
    datasets = make_series(count, rows=rows, columns=columns, **kwargs)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    cy, cx = rows / 2, columns / 2
    radius = ((y - cy) / (rows * 0.42)) ** 2 + ((x - cx) / (columns * 0.36)) ** 2
    for slice_index, ds in enumerate(datasets):
        body = np.where(radius < 1.0, 1040 + 60 * np.cos(y / 23 + slice_index / 5), 24.0)
        ring = (radius > 0.80) & (radius < 0.88)
        values = np.where(ring, 1900.0, body)
        noise = np.random.default_rng(slice_index).normal(0, 6, (rows, columns))
        ds.PixelData = np.clip(values + noise, 0, 4095).astype(np.uint16).tobytes()
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
    return datasets


def to_bytes(ds: Dataset) -> bytes:
    """The Part 10 encoding of a dataset."""
    buffer = io.BytesIO()
    implicit = ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return buffer.getvalue()


def write(ds: Dataset, folder: Path, name: str | None = None) -> Path:
    """Write the dataset as a Part 10 file in ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{ds.SOPInstanceUID}.dcm")
    path.write_bytes(to_bytes(ds))
    return path
