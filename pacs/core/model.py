"""Domain vocabulary: query levels, the attributes the index keeps in columns, summaries."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

MatchKind = Literal["pn", "date", "time", "uid", "text", "int"]


class Level(enum.IntEnum):
    """The four levels of the DICOM information model, top to bottom."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    IMAGE = 3

    @classmethod
    def parse(cls, value: str) -> Level:
        """``"STUDY"`` -> ``Level.STUDY`` (``INSTANCE`` is accepted for ``IMAGE``)."""
        text = value.strip().upper()
        if text == "INSTANCE":
            text = "IMAGE"
        try:
            return cls[text]
        except KeyError:
            raise ValueError(f"unknown query level {value!r}") from None


@dataclass(frozen=True)
class IndexedAttribute:
    """An attribute kept in a column of the level's table, matchable in SQL."""

    keyword: str
    level: Level
    column: str
    kind: MatchKind
    vr: str


INDEXED: dict[str, IndexedAttribute] = {
    a.keyword: a
    for a in (
        IndexedAttribute("PatientID", Level.PATIENT, "patient_id", "text", "LO"),
        IndexedAttribute("IssuerOfPatientID", Level.PATIENT, "issuer", "text", "LO"),
        IndexedAttribute("PatientName", Level.PATIENT, "patient_name", "pn", "PN"),
        IndexedAttribute("PatientBirthDate", Level.PATIENT, "birth_date", "date", "DA"),
        IndexedAttribute("PatientSex", Level.PATIENT, "sex", "text", "CS"),
        IndexedAttribute("StudyInstanceUID", Level.STUDY, "study_uid", "uid", "UI"),
        IndexedAttribute("StudyDate", Level.STUDY, "study_date", "date", "DA"),
        IndexedAttribute("StudyTime", Level.STUDY, "study_time", "time", "TM"),
        IndexedAttribute("AccessionNumber", Level.STUDY, "accession", "text", "SH"),
        IndexedAttribute("StudyID", Level.STUDY, "study_id", "text", "SH"),
        IndexedAttribute("StudyDescription", Level.STUDY, "description", "text", "LO"),
        IndexedAttribute("ReferringPhysicianName", Level.STUDY, "referring", "pn", "PN"),
        IndexedAttribute("SeriesInstanceUID", Level.SERIES, "series_uid", "uid", "UI"),
        IndexedAttribute("Modality", Level.SERIES, "modality", "text", "CS"),
        IndexedAttribute("SeriesNumber", Level.SERIES, "series_number", "int", "IS"),
        IndexedAttribute("SeriesDescription", Level.SERIES, "description", "text", "LO"),
        IndexedAttribute("BodyPartExamined", Level.SERIES, "body_part", "text", "CS"),
        IndexedAttribute("SeriesDate", Level.SERIES, "series_date", "date", "DA"),
        IndexedAttribute("SeriesTime", Level.SERIES, "series_time", "time", "TM"),
        IndexedAttribute("SOPInstanceUID", Level.IMAGE, "sop_uid", "uid", "UI"),
        IndexedAttribute("SOPClassUID", Level.IMAGE, "sop_class_uid", "uid", "UI"),
        IndexedAttribute("InstanceNumber", Level.IMAGE, "instance_number", "int", "IS"),
    )
}

UNIQUE_KEY: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}

# Attributes computed from the index rather than stored (PS3.4 C.3.4 and C.6.1.1.x).
COMPUTED: dict[str, tuple[Level, str]] = {
    "NumberOfPatientRelatedStudies": (Level.PATIENT, "IS"),
    "NumberOfPatientRelatedSeries": (Level.PATIENT, "IS"),
    "NumberOfPatientRelatedInstances": (Level.PATIENT, "IS"),
    "NumberOfStudyRelatedSeries": (Level.STUDY, "IS"),
    "NumberOfStudyRelatedInstances": (Level.STUDY, "IS"),
    "ModalitiesInStudy": (Level.STUDY, "CS"),
    "SOPClassesInStudy": (Level.STUDY, "UI"),
    "NumberOfSeriesRelatedInstances": (Level.SERIES, "IS"),
}

# Attributes of the Patient, Study and Series levels that are not indexed but may be asked
# for as return keys; their values come from a representative instance's header.
PATIENT_ATTRIBUTES = frozenset(
    {
        "PatientBirthTime",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "EthnicGroup",
        "PatientComments",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "IssuerOfPatientIDQualifiersSequence",
        "PatientMotherBirthName",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "ResponsiblePerson",
        "PatientSpeciesDescription",
        "PatientBreedDescription",
        "PatientIdentityRemoved",
        "PregnancyStatus",
    }
)
STUDY_ATTRIBUTES = frozenset(
    {
        "NameOfPhysiciansReadingStudy",
        "AdmittingDiagnosesDescription",
        "PhysiciansOfRecord",
        "ProcedureCodeSequence",
        "ReferencedStudySequence",
        "StudyComments",
        "RequestingPhysician",
        "RequestedProcedureDescription",
        "InstitutionName",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "AdditionalPatientHistory",
        "ReasonForPerformedProcedureCodeSequence",
        "IssuerOfAccessionNumberSequence",
        "Occupation",
        "TimezoneOffsetFromUTC",
    }
)
SERIES_ATTRIBUTES = frozenset(
    {
        "Laterality",
        "PerformingPhysicianName",
        "ProtocolName",
        "OperatorsName",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "RequestAttributesSequence",
        "PatientPosition",
        "Manufacturer",
        "ManufacturerModelName",
        "StationName",
        "InstitutionalDepartmentName",
        "FrameOfReferenceUID",
        "ViewPosition",
    }
)


def level_of(keyword: str) -> Level:
    """The information-model level an attribute belongs to (IMAGE for anything unknown)."""
    if keyword in INDEXED:
        return INDEXED[keyword].level
    if keyword in COMPUTED:
        return COMPUTED[keyword][0]
    if keyword in PATIENT_ATTRIBUTES:
        return Level.PATIENT
    if keyword in STUDY_ATTRIBUTES:
        return Level.STUDY
    if keyword in SERIES_ATTRIBUTES:
        return Level.SERIES
    return Level.IMAGE


@dataclass(frozen=True)
class InstanceSummary:
    """What the index needs from one instance's header, plus its header bytes."""

    patient_id: str
    issuer: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    study_description: str
    referring: str
    series_uid: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    series_date: str
    series_time: str
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    transfer_syntax: str
    number_of_frames: int
    header: bytes


@dataclass(frozen=True)
class StoredInstance:
    """Where an instance lives: its blob key and digest, with its place in the hierarchy."""

    sop_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    transfer_syntax: str
    blob_key: str
    size: int
    sha256: str
    tier: str = "hot"  # the storage tier holding the blob (see pacs.core.tiering)


class StoreOutcome(enum.Enum):
    """What Archive.store did with an instance."""

    STORED = "stored"
    DUPLICATE_IGNORED = "duplicate-ignored"
    REPLACED = "replaced"
