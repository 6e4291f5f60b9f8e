"""A real (tiny) ONNX classifier built in code, and a model folder for it.

The model's positive score is ``sigmoid(2 * gain * mean(input))`` with the input scaled to
[-1, 1]: a bright radiograph is flagged, a dark one is not, and the expected score of any
image can be computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

SIZE = 32
GAIN = 3.0


def build_onnx(path: Path, size: int = SIZE, gain: float = GAIN) -> None:
    """Write the model: NHWC float input ``input`` -> ``logits`` (N, 2)."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [-gain, gain])
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "one"], ["column"]),
            helper.make_node("Mul", ["column", "w"], ["logits"]),
        ],
        "tiny-brightness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weights, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_model_folder(
    folder: Path,
    *,
    name: str = "tiny-cxr",
    version: str = "1.0",
    threshold: float = 0.5,
    routing: dict[str, list[str]] | None = None,
) -> Path:
    """A model folder: the ONNX file and its card (the shared card's format, plus the
    fields our cards add)."""
    folder.mkdir(parents=True, exist_ok=True)
    build_onnx(folder / "model.onnx")
    card: dict[str, object] = {
        "file": "model.onnx",
        "name": name,
        "version": version,
        "task": "test model: flags bright chest X-rays",
        "input": {
            "name": "input",
            "shape": ["batch", SIZE, SIZE, 3],
            "layout": "NHWC",
            "resize": "nearest",
            "scaling": "x / 127.5 - 1.0",
        },
        "output": {
            "name": "logits",
            "classes": ["NORMAL", "PNEUMONIA"],
            "postprocess": "softmax over axis 1; p_pneumonia = softmax[:, 1]",
        },
        "operating_point": {
            "threshold": threshold,
            "source": "test",
            "model_version": version,
        },
    }
    if routing is not None:
        card["routing"] = routing
    (folder / "model_card.json").write_text(json.dumps(card, indent=2))
    return folder


def expected_score(mean_scaled: float, gain: float = GAIN) -> float:
    """The model's positive probability for an input of this mean (after scaling)."""
    return float(1.0 / (1.0 + np.exp(-2.0 * gain * mean_scaled)))
