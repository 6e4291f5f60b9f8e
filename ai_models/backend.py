"""Inference backends: raw model outputs for a batch. ``OnnxBackend`` runs onnxruntime."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from ai_models.card import ModelCard, ModelCardError

log = logging.getLogger(__name__)
CPU = "CPUExecutionProvider"


class InferenceBackend(Protocol):
    """Anything that maps a float32 input batch to the model's raw output batch."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs, one row per input."""
        ...


def usable_providers(requested: Sequence[str]) -> list[str]:
    """The requested providers this onnxruntime build has, in order; CPU when none is."""
    available = set(ort.get_available_providers())
    kept = [p for p in requested if p in available]
    for missing in (p for p in requested if p not in available):
        log.warning(
            "onnxruntime provider %s was asked for but is not available (available: %s)",
            missing,
            ", ".join(sorted(available)),
        )
    if not kept:
        log.warning("no requested onnxruntime provider is available; using %s", CPU)
        kept = [CPU]
    return kept


class OnnxBackend:
    """One onnxruntime session per model, loaded once; ``run`` is thread-safe."""

    def __init__(
        self,
        card: ModelCard,
        providers: Sequence[str] = (CPU,),
        threads: int = 0,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(int(threads), 0)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        wanted = usable_providers(providers)
        try:
            self.session = ort.InferenceSession(
                str(card.onnx_path), sess_options=options, providers=wanted
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelCardError(f"{card.onnx_path}: onnxruntime cannot load it: {exc}") from exc
        self.providers_in_use: list[str] = list(self.session.get_providers())
        fell_back = [p for p in wanted if p not in self.providers_in_use]
        if fell_back:
            log.warning(
                "model %s: provider(s) %s failed to start; running on %s",
                card.name,
                ", ".join(fell_back),
                ", ".join(self.providers_in_use),
            )
        self.card = card
        self._check_signature()
        log.info(
            "model %s version %s: onnxruntime session on %s, %s intra-op threads",
            card.name,
            card.version,
            ", ".join(self.providers_in_use),
            threads or "default",
        )

    def _check_signature(self) -> None:
        card = self.card
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        contract = card.input
        if contract.input_name not in inputs:
            raise ModelCardError(
                f"{card.onnx_path.name}: no input named {contract.input_name!r} "
                f"(the model has {sorted(inputs)})"
            )
        if card.output_name not in outputs:
            raise ModelCardError(
                f"{card.onnx_path.name}: no output named {card.output_name!r} "
                f"(the model has {sorted(outputs)})"
            )
        if contract.layout == "NHWC":
            expected = (contract.height, contract.width, contract.channels)
        else:
            expected = (contract.channels, contract.height, contract.width)
        shape = inputs[contract.input_name].shape
        if len(shape) != 4 or any(
            isinstance(dim, int) and dim != want
            for dim, want in zip(shape[1:], expected, strict=True)
        ):
            raise ModelCardError(
                f"{card.onnx_path.name}: input shape {shape} does not match the card's "
                f"{contract.layout} {expected}"
            )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs of the card's output for a float32 batch."""
        feed = {self.card.input.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        (result,) = self.session.run([self.card.output_name], feed)
        return np.asarray(result)
