"""Evaluation on a labelled folder: AUROC, sensitivity and specificity with bootstrap CIs.

The labels CSV has a ``file`` column (paths relative to the CSV: PNG, JPEG or DICOM) and a
label column: 1/true/yes or the card's positive class name is positive; 0/false/no or
another class name is negative. A file that cannot be read or a blank/unknown label is
reported in ``failures``, never fatal.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from ai_models.card import CARD_FILE, ModelCard, ModelCardError, load_card, read_card_json
from ai_models.classifier import Classifier
from ai_models.preprocess import UnsupportedImage

POSITIVE = {"1", "true", "yes", "y", "positive"}
NEGATIVE = {"0", "false", "no", "n", "negative"}
Interval = tuple[float, float] | None


@dataclass
class EvaluationReport:
    """The figures of one evaluation run, ready for JSON and for the model card."""

    model_name: str
    model_version: str
    use: str
    threshold: float
    threshold_source: str
    dataset: str
    labels_csv: str
    label_column: str
    date: str
    n: int
    positives: int
    negatives: int
    flagged: int
    auroc: float | None
    auroc_ci: Interval
    sensitivity: float | None
    sensitivity_ci: Interval
    specificity: float | None
    specificity_ci: Interval
    bootstrap: int
    seed: int
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        data = asdict(self)
        data["failures"] = [{"file": f, "reason": r} for f, r in self.failures]
        for key in ("auroc_ci", "sensitivity_ci", "specificity_ci"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data

    def card_entry(self) -> dict[str, Any]:
        """What ``--record`` keeps in the card's ``evaluations`` (failures as a count)."""
        data = self.to_dict()
        data["failed_files"] = len(self.failures)
        del data["failures"]
        del data["model_name"]
        del data["use"]
        return data

    def to_text(self) -> str:
        """A short human-readable summary."""
        lines = [
            f"model {self.model_name} version {self.model_version} ({self.use})",
            f"data set {self.dataset} ({self.labels_csv}), label column {self.label_column!r}",
            f"n {self.n}: {self.positives} positive, {self.negatives} negative; "
            f"{self.flagged} flagged at threshold {self.threshold:g} ({self.threshold_source})",
            f"AUROC        {_figure(self.auroc, self.auroc_ci)}",
            f"sensitivity  {_figure(self.sensitivity, self.sensitivity_ci)}",
            f"specificity  {_figure(self.specificity, self.specificity_ci)}",
            f"95% CIs: percentile bootstrap, {self.bootstrap} resamples, seed {self.seed}",
        ]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"failed: {name}: {reason}" for name, reason in self.failures]
        return "\n".join(lines)


def _figure(value: float | None, interval: Interval) -> str:
    if value is None:
        return "undefined"
    if interval is None:
        return f"{value:.3f} (CI undefined)"
    return f"{value:.3f} (95% CI {interval[0]:.3f}-{interval[1]:.3f})"


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties count half); None without both classes."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels).astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def sensitivity(flags: np.ndarray, labels: np.ndarray) -> float | None:
    """True-positive rate; None without positives."""
    positive = np.asarray(labels).astype(bool)
    return float(np.asarray(flags)[positive].mean()) if positive.any() else None


def specificity(flags: np.ndarray, labels: np.ndarray) -> float | None:
    """True-negative rate; None without negatives."""
    negative = ~np.asarray(labels).astype(bool)
    return float(1.0 - np.asarray(flags)[negative].mean()) if negative.any() else None


def bootstrap_intervals(
    scores: np.ndarray, labels: np.ndarray, threshold: float, resamples: int, seed: int
) -> dict[str, Interval]:
    """Percentile 95% intervals of AUROC, sensitivity and specificity (seeded)."""
    rng = np.random.default_rng(seed)
    flags = scores >= threshold
    samples: dict[str, list[float]] = {"auroc": [], "sensitivity": [], "specificity": []}
    n = scores.size
    for _ in range(resamples if n else 0):
        pick = rng.integers(0, n, size=n)
        for name, value in (
            ("auroc", auroc(scores[pick], labels[pick])),
            ("sensitivity", sensitivity(flags[pick], labels[pick])),
            ("specificity", specificity(flags[pick], labels[pick])),
        ):
            if value is not None:
                samples[name].append(value)
    result: dict[str, Interval] = {}
    for name, values in samples.items():
        if len(values) < max(resamples // 2, 1):
            result[name] = None
        else:
            low, high = np.percentile(values, [2.5, 97.5])
            result[name] = (float(low), float(high))
    return result


def parse_label(value: str | None, card: ModelCard) -> bool:
    """True for a positive label, False for a negative one; ValueError otherwise."""
    text = (value or "").strip()
    lowered = text.lower()
    if lowered in POSITIVE or lowered == card.positive_class.lower():
        return True
    if lowered in NEGATIVE or lowered in {c.lower() for c in card.classes}:
        return False
    raise ValueError(f"label {text!r} is neither positive nor negative")


def load_image_file(path: Path) -> tuple[str, Any]:
    """``("dicom", Dataset)`` or ``("image", uint8 array)`` for a DICOM, PNG or JPEG file."""
    with path.open("rb") as handle:
        head = handle.read(132)
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        try:
            return "dicom", dcmread(path)
        except (InvalidDicomError, EOFError, ValueError) as exc:
            raise UnsupportedImage(f"not readable DICOM: {exc}") from exc
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
                wide = np.asarray(picture, dtype=np.float64)
                return "image", np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
            if picture.mode in ("L", "RGB"):
                return "image", np.asarray(picture)
            colour = "A" in picture.mode or picture.mode in ("P", "CMYK")
            return "image", np.asarray(picture.convert("RGB" if colour else "L"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnsupportedImage(f"not a readable image: {exc}") from exc


def _read_rows(labels_csv: Path, label_column: str, file_column: str) -> list[dict[str, str]]:
    with labels_csv.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for needed in (file_column, label_column):
            if needed not in columns:
                raise ValueError(f"{labels_csv}: no column {needed!r} (columns: {columns})")
        return list(reader)


def score_files(
    classifier: Classifier, labels_csv: Path, label_column: str, file_column: str = "file"
) -> tuple[list[tuple[str, float, bool]], list[tuple[str, str]]]:
    """(file, score, label) for each usable row, and (file, reason) for each failed one."""
    base = labels_csv.parent
    scored: list[tuple[str, float, bool]] = []
    failures: list[tuple[str, str]] = []
    pending: list[tuple[str, np.ndarray, bool]] = []

    def flush() -> None:
        predictions = classifier.predict_inputs([x for _, x, _ in pending])
        scored.extend(
            (name, p.score, label) for (name, _, label), p in zip(pending, predictions, strict=True)
        )
        pending.clear()

    for row in _read_rows(labels_csv, label_column, file_column):
        name = row.get(file_column) or ""
        try:
            label = parse_label(row.get(label_column), classifier.card)
            kind, content = load_image_file(base / name)
            prepared = (
                classifier.prepare_dataset(content)
                if kind == "dicom"
                else classifier.prepare_image(content)
            )
        except (ValueError, OSError) as exc:  # UnsupportedImage is a ValueError
            failures.append((name, str(exc)))
            continue
        pending.append((name, prepared, label))
        if len(pending) >= classifier.batch_size:
            flush()
    if pending:
        flush()
    return scored, failures


def evaluate(
    classifier: Classifier,
    labels_csv: Path,
    label_column: str,
    *,
    file_column: str = "file",
    dataset_name: str | None = None,
    bootstrap: int = 2000,
    seed: int = 0,
) -> EvaluationReport:
    """Score every labelled file and compute the figures at the card's operating point."""
    labels_csv = Path(labels_csv)
    card = classifier.card
    scored, failures = score_files(classifier, labels_csv, label_column, file_column)
    scores = np.asarray([s for _, s, _ in scored], dtype=np.float64)
    labels = np.asarray([y for _, _, y in scored], dtype=bool)
    flags = scores >= card.threshold
    intervals = bootstrap_intervals(scores, labels, card.threshold, bootstrap, seed)
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    notes = []
    if positives == 0 or negatives == 0:
        missing = "positive" if positives == 0 else "negative"
        notes.append(
            f"no {missing} cases: AUROC and {'sensitivity' if positives == 0 else 'specificity'} "
            "are undefined"
        )
    if card.threshold_source.startswith("default"):
        notes.append(
            f"the threshold {card.threshold:g} is a default, not a validated operating point"
        )
    return EvaluationReport(
        model_name=card.name,
        model_version=card.version,
        use=card.use_label,
        threshold=card.threshold,
        threshold_source=card.threshold_source,
        dataset=dataset_name or labels_csv.resolve().parent.name,
        labels_csv=str(labels_csv),
        label_column=label_column,
        date=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        n=int(labels.size),
        positives=positives,
        negatives=negatives,
        flagged=int(flags.sum()),
        auroc=auroc(scores, labels),
        auroc_ci=intervals["auroc"],
        sensitivity=sensitivity(flags, labels),
        sensitivity_ci=intervals["sensitivity"],
        specificity=specificity(flags, labels),
        specificity_ci=intervals["specificity"],
        bootstrap=bootstrap,
        seed=seed,
        notes=notes,
        failures=failures,
    )


def _refuse_read_only(folder: Path, card_file: Path) -> None:
    """Refuse a folder or card without write permission bits, even when running as root."""
    for path in (folder, card_file):
        if not stat.S_IMODE(path.stat().st_mode) & stat.S_IWUSR or not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")


def record_evaluation(folder: Path, report: EvaluationReport) -> Path:
    """Append the report to the card's ``evaluations`` (atomic rewrite of the card file).

    Refused when the card now describes another model version than the one evaluated.
    """
    folder = Path(folder)
    card = load_card(folder)
    if card.version != report.model_version:
        raise ModelCardError(
            f"the evaluation is of version {report.model_version}, the card in {folder} "
            f"is version {card.version}"
        )
    target = folder / CARD_FILE
    _refuse_read_only(folder, target)
    raw = read_card_json(folder)
    evaluations = raw.get("evaluations", [])
    if not isinstance(evaluations, list):
        raise ModelCardError(f"{folder / CARD_FILE}: evaluations must be a list")
    evaluations.append(report.card_entry())
    raw["evaluations"] = evaluations
    mode = stat.S_IMODE(target.stat().st_mode)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".model_card.", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(raw, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
