"""A tiny ONNX model built in code: a fixed linear layer over the mean of the input.

logits = [0, WEIGHT * mean(x) + BIAS], so p(positive) = sigmoid(WEIGHT * mean(x) + BIAS)
can be computed by hand for any input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHT = 4.0
BIAS = 1.0
SIZE = 8


def build_onnx(
    path: Path, *, layout: str = "NHWC", size: int = SIZE, channels: int = 3, classes: int = 2
) -> Path:
    """Write the model: input ``input`` [N, size, size, channels] (or NCHW), output ``logits``."""
    dims: list[Any] = (
        ["N", size, size, channels] if layout == "NHWC" else ["N", channels, size, size]
    )
    weights = np.zeros((1, classes), dtype=np.float32)
    bias = np.zeros((classes,), dtype=np.float32)
    weights[0, -1], bias[-1] = WEIGHT, BIAS
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Flatten", ["mean"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["product"]),
            helper.make_node("Add", ["product", "B"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def card_json(**overrides: Any) -> dict[str, Any]:
    """A complete card in our own format for the tiny model."""
    card: dict[str, Any] = {
        "name": "tiny",
        "version": "1.0",
        "file": "model.onnx",
        "task": "test model",
        "intended_use": "tests only",
        "clinical_use": False,
        "licence": "Apache-2.0",
        "input": {
            "name": "input",
            "height": SIZE,
            "width": SIZE,
            "channels": 3,
            "layout": "NHWC",
            "resize": "bilinear",
            "scaling": {"divisor": 127.5, "mean": 1.0, "std": 1.0},
            "dicom_window": {"method": "image"},
        },
        "output": {
            "name": "logits",
            "classes": ["NORMAL", "ABNORMAL"],
            "positive_class": "ABNORMAL",
            "postprocess": "softmax",
        },
        "operating_point": {"threshold": 0.8, "source": "test", "model_version": "1.0"},
        "routing": {"modalities": ["CR", "DX"], "body_parts": ["CHEST"]},
    }
    card.update(overrides)
    return card


def make_model_folder(folder: Path, card: dict[str, Any] | None = None, **onnx_args: Any) -> Path:
    """A model folder: ``model.onnx`` and ``model_card.json``."""
    build_onnx(folder / "model.onnx", **onnx_args)
    (folder / "model_card.json").write_text(json.dumps(card or card_json()), encoding="utf-8")
    return folder


def expected_score(mean_input: float) -> float:
    """p(positive) for a given mean of the scaled model input."""
    return 1.0 / (1.0 + math.exp(-(WEIGHT * mean_input + BIAS)))
