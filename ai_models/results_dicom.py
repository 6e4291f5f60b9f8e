"""AI results as DICOM objects, built with highdicom: a TID 1500 measurement report
(Comprehensive 3D SR) per series and model version, and a heat map as Secondary Capture.

UIDs are derived from what the result is about (series, model name and version, the
series' generation), so a job run twice after a crash produces the very same objects and
the archive keeps one copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

import highdicom as hd
import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from ai_models.card import ModelCard

MANUFACTURER = "PACS AI pipeline"
SR_SERIES_NUMBER = 9901
HEATMAP_SERIES_NUMBER = 9902

_FINDING_CODES = {
    "PNEUMONIA": hd.sr.CodedConcept("233604007", "SCT", "Pneumonia"),
    "ABNORMAL": hd.sr.CodedConcept("263654008", "SCT", "Abnormal"),
}
_SCORE_CONCEPT = hd.sr.CodedConcept("AI-SCORE", "99PACSAI", "AI model probability of finding")
_CHEST_XRAY = hd.sr.CodedConcept("168731009", "SCT", "Chest X-ray")
_UNITLESS = hd.sr.CodedConcept("1", "UCUM", "no units")


@dataclass(frozen=True)
class SeriesFinding:
    """A model's conclusion on one series: the series score is the highest image score."""

    card: ModelCard
    score: float
    flagged: bool
    image_scores: dict[str, float]  # SOP Instance UID -> score


_UID_NAMESPACE = uuid.UUID("0f1b7a44-5c43-5e36-9d0e-3f8a2c6b9e21")


def stable_uid(*parts: str) -> str:
    """A ``2.25`` UID (PS3.5 B.2) from a name-based UUID of ``parts``: the same parts give the
    same UID, in every process and after every restart."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(31).join(parts)).int}"


def finding_concept(name: str) -> hd.sr.CodedConcept:
    """A coded concept for a model's positive class (SNOMED CT where we know it)."""
    known = _FINDING_CODES.get(name.upper())
    if known is not None:
        return known
    return hd.sr.CodedConcept(name.upper()[:16] or "FINDING", "99PACSAI", name or "Finding")


def _algorithm(card: ModelCard) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=card.name[:64],
        version=card.version[:64],
        parameters=[
            f"threshold={card.threshold:.4f}",
            f"threshold_source={card.threshold_source}"[:64],
            f"use={card.use_label}"[:64],
        ],
    )


def _encode(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def build_report(
    finding: SeriesFinding, evidence: Sequence[Dataset], generation: int
) -> tuple[str, bytes]:
    """The SR of one series' result: (SOP Instance UID, Part 10 bytes). ``evidence`` are the
    headers of the images read (pixel data not needed)."""
    card = finding.card
    first = evidence[0]
    algorithm = _algorithm(card)
    device_uid = stable_uid("ai-device", card.name, card.version)
    observation_context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=device_uid,
                name=card.name[:64],
                manufacturer_name=MANUFACTURER,
                model_name=f"{card.name} {card.version}"[:64],
            ),
        )
    )
    source_series = str(first.SeriesInstanceUID)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid("ai-tracking", source_series, card.name, card.version),
            identifier=f"AI {card.name}"[:64],
        ),
        algorithm_id=algorithm,
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(str(ds.SOPClassUID), str(ds.SOPInstanceUID))
            for ds in evidence
        ],
        measurements=[
            hd.sr.Measurement(
                name=_SCORE_CONCEPT,
                value=round(finding.score, 6),
                unit=_UNITLESS,
                algorithm_id=algorithm,
            )
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=finding_concept(card.positive_class),
                value=codes.SCT.Present if finding.flagged else codes.SCT.Absent,
            )
        ],
    )
    report = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=_CHEST_XRAY,
        imaging_measurements=[group],
    )
    sop_uid = stable_uid("ai-sr", source_series, card.name, card.version, str(generation))
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=stable_uid(
            "ai-sr-series", str(first.StudyInstanceUID), card.name, card.version
        ),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=f"AI {card.name} {card.version} ({card.use_label})"[:64],
    )
    return sop_uid, _encode(sr)


def build_heatmap(
    card: ModelCard, source: Dataset, overlay: np.ndarray, generation: int
) -> tuple[str, bytes]:
    """A Secondary Capture of the heat map over one source image: (SOP UID, Part 10 bytes)."""
    sop_uid = stable_uid(
        "ai-heatmap", str(source.SOPInstanceUID), card.name, card.version, str(generation)
    )
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=np.ascontiguousarray(overlay, dtype=np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=stable_uid(
            "ai-heatmap-series", str(source.StudyInstanceUID), card.name, card.version
        ),
        series_number=HEATMAP_SERIES_NUMBER,
        sop_instance_uid=sop_uid,
        instance_number=int(source.get("InstanceNumber", 1) or 1),
        manufacturer=MANUFACTURER,
        patient_orientation=("L", "F"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        series_description=f"AI heat map {card.name} {card.version} ({card.use_label})"[:64],
    )
    return sop_uid, _encode(image)
