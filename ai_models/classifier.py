"""A model card plus a backend: images or DICOM data sets in, per-class probabilities out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pydicom.dataset import Dataset

from ai_models.backend import InferenceBackend
from ai_models.card import ModelCard
from ai_models.preprocess import UnsupportedImage, dataset_input, model_input

T = TypeVar("T")


@dataclass(frozen=True)
class Prediction:
    """One image's result: probabilities per class, the positive score, and the flag."""

    probabilities: dict[str, float]
    score: float
    finding: str
    flagged: bool


def postprocess(raw: np.ndarray, card: ModelCard) -> np.ndarray:
    """Raw outputs (N, classes) to probabilities per the card (softmax, sigmoid or none)."""
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    values = values.reshape(values.shape[0], -1)
    if values.shape[1] != len(card.classes):
        raise ValueError(
            f"model {card.name} gave {values.shape[1]} outputs per image, "
            f"the card lists {len(card.classes)} classes"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"model {card.name} gave non-finite outputs (NaN or infinity)")
    if card.postprocess == "softmax":
        shifted = np.exp(values - values.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
    if card.postprocess == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-values)))
    return values


class Classifier:
    """Preprocessing per the card, batched inference, thresholding at the card's operating point."""

    def __init__(
        self,
        card: ModelCard,
        backend: InferenceBackend,
        batch_size: int = 8,
        *,
        fixed_batch: bool = False,
    ) -> None:
        """``fixed_batch`` pads every batch to ``batch_size`` rows: on CUDA each new input
        shape costs a cuDNN algorithm search of a second or more, so one shape is kept."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.card = card
        self.backend = backend
        self.batch_size = batch_size
        self.fixed_batch = fixed_batch
        self._positive = card.classes.index(card.positive_class)

    def warm_up(self) -> None:
        """Run one batch of blank input, so that the first real image pays no start-up cost."""
        contract = self.card.input
        blank = np.zeros((contract.height, contract.width, contract.channels), dtype=np.uint8)
        self.predict_inputs(
            [self.prepare_image(blank[..., 0] if contract.channels == 1 else blank)]
        )

    def prepare_dataset(self, ds: Dataset) -> np.ndarray:
        """One DICOM data set as model input; ``UnsupportedImage`` when it cannot be."""
        return dataset_input(ds, self.card.input)

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """One 8-bit image as model input; ``UnsupportedImage`` when it cannot be."""
        return model_input(image, self.card.input)

    def predict_inputs(self, inputs: Sequence[np.ndarray]) -> list[Prediction]:
        """Predictions for prepared inputs, run ``batch_size`` at a time."""
        results: list[Prediction] = []
        for start in range(0, len(inputs), self.batch_size):
            batch = np.stack(inputs[start : start + self.batch_size]).astype(np.float32)
            rows = batch.shape[0]
            if self.fixed_batch and rows < self.batch_size:
                padding = np.zeros((self.batch_size - rows, *batch.shape[1:]), dtype=np.float32)
                batch = np.concatenate([batch, padding])
            probabilities = postprocess(self.backend.run(batch), self.card)[:rows]
            if probabilities.shape[0] != rows:
                raise ValueError(
                    f"model {self.card.name} gave {probabilities.shape[0]} rows "
                    f"for a batch of {rows}"
                )
            results.extend(self._prediction(row) for row in probabilities)
        return results

    def _prediction(self, row: np.ndarray) -> Prediction:
        score = float(row[self._positive])
        return Prediction(
            probabilities={c: float(p) for c, p in zip(self.card.classes, row, strict=True)},
            score=score,
            finding=self.card.positive_class,
            flagged=score >= self.card.threshold,
        )

    def predict_datasets(self, datasets: Sequence[Dataset]) -> list[Prediction]:
        """Preprocess and predict; ``UnsupportedImage`` names the first data set that fails."""
        return self.predict_inputs(_prepared(datasets, self.prepare_dataset, "data set"))

    def predict_images(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Predict already 8-bit display images (PNG/JPEG path)."""
        return self.predict_inputs(_prepared(images, self.prepare_image, "image"))


def _prepared(
    items: Sequence[T], prepare: Callable[[T], np.ndarray], what: str
) -> list[np.ndarray]:
    """Each item as model input; ``UnsupportedImage`` says which item failed."""
    inputs = []
    for number, item in enumerate(items):
        try:
            inputs.append(prepare(item))
        except UnsupportedImage as exc:
            raise UnsupportedImage(f"{what} {number}: {exc}") from exc
    return inputs
