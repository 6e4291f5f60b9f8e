"""Model cards: ``model_card.json`` in a model folder, read and validated into a ``ModelCard``.

The format is documented in ``ai_models/README.md``. It is a superset of the card shipped
with ``../shared/data/cxr-model``: free-text ``resize``/``scaling``/``postprocess`` fields of
that card are understood, and the fields it lacks (name, version, threshold, intended use,
clinical use) are derived, each derivation listed in ``ModelCard.derived``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
RESEARCH_ONLY = "research use only, not for clinical use"
DEFAULT_THRESHOLD_SOURCE = "default, not validated"
LAYOUTS = ("NHWC", "NCHW")
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
POSTPROCESS = ("softmax", "sigmoid", "none")
WINDOW_METHODS = ("percentile", "image")


class ModelCardError(ValueError):
    """The model folder or its card is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Scaling:
    """8-bit value ``x`` to model float: ``(x / divisor - mean[c]) / std[c]`` per channel."""

    divisor: float = 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class DicomWindow:
    """How a DICOM image becomes 8-bit before scaling.

    ``percentile``: the modality values between the ``low`` and ``high`` percentiles map to
    0..255; ``image``: the image's first VOI LUT or window, else its full range.
    """

    method: str = "percentile"
    low: float = 0.5
    high: float = 99.5


@dataclass(frozen=True)
class InputContract:
    """What the model expects: size, channels, layout, resize, scaling, DICOM handling."""

    height: int
    width: int
    channels: int
    layout: str
    input_name: str
    resize: str
    scaling: Scaling
    dicom_window: DicomWindow = field(default_factory=DicomWindow)
    invert_monochrome1: bool = True


@dataclass(frozen=True)
class RoutingDefaults:
    """Which series the card suggests sending to this model (the site's rules decide)."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()
    description_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """A validated model folder: the ONNX file, what it does and how well it was measured."""

    folder: Path
    onnx_path: Path
    sha256: str | None
    name: str
    version: str
    classes: tuple[str, ...]
    positive_class: str
    output_name: str
    postprocess: str
    threshold: float
    threshold_source: str
    intended_use: str
    clinical_use: bool
    licence: str
    performance: dict[str, object]
    evaluations: tuple[dict[str, object], ...]
    routing: RoutingDefaults | None
    input: InputContract
    derived: tuple[str, ...] = ()

    @property
    def use_label(self) -> str:
        """What every display of a result must say about the model's standing."""
        return "clinical use" if self.clinical_use else RESEARCH_ONLY

    def summary(self) -> dict[str, object]:
        """Plain values for JSON answers and logs."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "intended_use": self.intended_use,
            "clinical_use": self.clinical_use,
            "use": self.use_label,
            "licence": self.licence,
            "performance": self.performance,
            "evaluations": list(self.evaluations),
            "derived": list(self.derived),
        }


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_card_json(folder: Path) -> dict[str, Any]:
    """The raw JSON object of ``folder/model_card.json``."""
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelCardError(f"{path}: no {CARD_FILE} in the model folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ModelCardError(f"{path}: the card must be a JSON object")
    return raw


def load_card(folder: Path, *, verify_sha256: bool = True) -> ModelCard:
    """Read and validate ``folder/model_card.json``; ``ModelCardError`` says what is wrong.

    The ONNX file is hashed: a card stating another ``sha256`` is refused (its threshold
    and measured performance belong to other weights).
    """
    folder = Path(folder)
    raw = read_card_json(folder)
    try:
        return _parse(folder, raw, verify_sha256)
    except ModelCardError as exc:
        raise ModelCardError(f"{folder / CARD_FILE}: {exc}") from None


def _parse(folder: Path, raw: dict[str, Any], verify_sha256: bool) -> ModelCard:
    derived: list[str] = []
    onnx_path = _onnx_path(folder, raw, derived)
    stated_sha = _opt_str(raw, "sha256")
    actual_sha = file_sha256(onnx_path) if verify_sha256 or stated_sha is None else stated_sha
    if stated_sha is not None and stated_sha.lower() != actual_sha:
        raise ModelCardError(
            f"sha256 of {onnx_path.name} is {actual_sha}, the card says {stated_sha}: "
            "the card describes other weights"
        )
    name = _opt_str(raw, "name")
    if name is None:
        name = folder.name
        derived.append(f"name from the folder name: {name}")
    version = _opt_str(raw, "version")
    if version is None:
        version = f"sha256:{actual_sha[:12]}"
        derived.append(f"version from the ONNX file's sha256: {version}")
    output = _section(raw, "output")
    classes = _classes(output)
    postprocess = _postprocess(output, derived)
    positive = _positive_class(raw, output, classes, derived)
    threshold, threshold_source = _operating_point(raw, version, postprocess, derived)
    intended_use = _opt_str(raw, "intended_use")
    if intended_use is None:
        task = _opt_str(raw, "task") or "not stated"
        intended_use = f"{task} ({RESEARCH_ONLY})"
        derived.append("intended_use from the card's task")
    clinical_use = raw.get("clinical_use", False)
    if not isinstance(clinical_use, bool):
        raise ModelCardError("clinical_use must be true or false")
    if "clinical_use" not in raw:
        derived.append("clinical_use false: the card does not say clinical_use: true")
    licence = _opt_str(raw, "licence") or _opt_str(raw, "license") or "not stated"
    return ModelCard(
        folder=folder,
        onnx_path=onnx_path,
        sha256=actual_sha,
        name=name,
        version=version,
        classes=classes,
        positive_class=positive,
        output_name=_opt_str(output, "name") or "output",
        postprocess=postprocess,
        threshold=threshold,
        threshold_source=threshold_source,
        intended_use=intended_use,
        clinical_use=clinical_use,
        licence=licence,
        performance=_performance(raw),
        evaluations=_evaluations(raw, version),
        routing=_routing(raw),
        input=_input_contract(_section(raw, "input"), derived),
        derived=tuple(derived),
    )


def _opt_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ModelCardError(f"{key} must be a non-empty string")
    return value.strip()


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ModelCardError(f"the card needs an object '{key}'")
    return value


def _onnx_path(folder: Path, raw: dict[str, Any], derived: list[str]) -> Path:
    name = _opt_str(raw, "file")
    if name is None:
        found = sorted(folder.glob("*.onnx"))
        if len(found) != 1:
            raise ModelCardError(f"no 'file' given and {len(found)} .onnx files in the folder")
        derived.append(f"file: the only .onnx in the folder, {found[0].name}")
        return found[0]
    if Path(name).name != name:
        raise ModelCardError(f"file must be a file name inside the model folder, not {name!r}")
    path = folder / name
    if not path.is_file():
        raise ModelCardError(f"the ONNX file {name} is missing")
    return path


def _classes(output: dict[str, Any]) -> tuple[str, ...]:
    classes = output.get("classes")
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise ModelCardError("output.classes must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise ModelCardError("output.classes has duplicate names")
    return tuple(classes)


def _postprocess(output: dict[str, Any], derived: list[str]) -> str:
    text = output.get("postprocess", "none")
    if not isinstance(text, str):
        raise ModelCardError("output.postprocess must be a string")
    lowered = text.strip().lower()
    for method in POSTPROCESS:
        if lowered == method:
            return method
    for method in POSTPROCESS[:2]:
        if method in lowered:
            derived.append(f"postprocess {method} from the text {text!r}")
            return method
    raise ModelCardError(f"output.postprocess {text!r}: expected one of {', '.join(POSTPROCESS)}")


def _positive_class(
    raw: dict[str, Any], output: dict[str, Any], classes: tuple[str, ...], derived: list[str]
) -> str:
    stated = _opt_str(raw, "positive_class") or _opt_str(output, "positive_class")
    if stated is not None:
        if stated not in classes:
            raise ModelCardError(f"positive_class {stated!r} is not one of {list(classes)}")
        return stated
    text = str(output.get("postprocess", "")).lower()
    named = [c for c in classes if re.search(rf"\bp_{re.escape(c.lower())}\b", text)]
    if len(named) == 1:
        derived.append(f"positive_class {named[0]} from the postprocess text")
        return named[0]
    if len(classes) in (1, 2):
        derived.append(f"positive_class {classes[-1]}: the last of the classes")
        return classes[-1]
    raise ModelCardError("positive_class is required when there are more than two classes")


def _operating_point(
    raw: dict[str, Any], version: str, postprocess: str, derived: list[str]
) -> tuple[float, str]:
    point = raw.get("operating_point")
    if point is None:
        if postprocess == "none":
            raise ModelCardError("operating_point is required when output.postprocess is none")
        derived.append(f"threshold 0.5 ({DEFAULT_THRESHOLD_SOURCE}): the card sets none")
        return 0.5, DEFAULT_THRESHOLD_SOURCE
    if not isinstance(point, dict):
        raise ModelCardError("operating_point must be an object")
    threshold = point.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ModelCardError("operating_point.threshold must be a number")
    if postprocess != "none" and not 0.0 <= float(threshold) <= 1.0:
        raise ModelCardError("operating_point.threshold must lie in [0, 1]")
    source = _opt_str(point, "source")
    if source is None:
        raise ModelCardError("operating_point.source must say where the threshold came from")
    for_version = _opt_str(point, "model_version")
    if for_version is None:
        raise ModelCardError("operating_point.model_version must name the version it was set for")
    if for_version != version:
        raise ModelCardError(
            f"operating_point was set for model version {for_version}, this model is {version}: "
            "a threshold is never carried over to another version; set it again"
        )
    return float(threshold), source


def _performance(raw: dict[str, Any]) -> dict[str, object]:
    result: dict[str, object] = {}
    stated = raw.get("performance")
    if stated is not None:
        if not isinstance(stated, dict):
            raise ModelCardError("performance must be an object")
        result.update(stated)
    for key, value in raw.items():
        if key.startswith("observed_performance"):
            result[key] = value
    return result


def _evaluations(raw: dict[str, Any], version: str) -> tuple[dict[str, object], ...]:
    items = raw.get("evaluations", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ModelCardError("evaluations must be a list of objects")
    kept = [i for i in items if i.get("model_version") == version]
    if len(kept) != len(items):
        log.warning(
            "model %s: %d evaluation(s) of other model versions ignored",
            version,
            len(items) - len(kept),
        )
    return tuple(kept)


def _str_list(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelCardError(f"routing.{key} must be a list of strings")
    return tuple(value)


def _routing(raw: dict[str, Any]) -> RoutingDefaults | None:
    routing = raw.get("routing")
    if routing is None:
        return None
    if not isinstance(routing, dict):
        raise ModelCardError("routing must be an object")
    patterns = _str_list(routing, "description_patterns")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ModelCardError(f"routing.description_patterns: {pattern!r}: {exc}") from None
    return RoutingDefaults(
        modalities=_str_list(routing, "modalities"),
        body_parts=_str_list(routing, "body_parts"),
        view_positions=_str_list(routing, "view_positions"),
        description_patterns=patterns,
    )


def _input_contract(spec: dict[str, Any], derived: list[str]) -> InputContract:
    layout = str(spec.get("layout", "NHWC")).upper()
    if layout not in LAYOUTS:
        raise ModelCardError(f"input.layout {layout!r}: expected NHWC or NCHW")
    height, width, channels = _input_size(spec, layout)
    if channels not in (1, 3):
        raise ModelCardError(f"input has {channels} channels: only 1 or 3 are supported")
    return InputContract(
        height=height,
        width=width,
        channels=channels,
        layout=layout,
        input_name=_opt_str(spec, "name") or "input",
        resize=_resize(spec, derived),
        scaling=_scaling(spec.get("scaling"), channels, derived),
        dicom_window=_dicom_window(spec, derived),
        invert_monochrome1=_bool(spec, "invert_monochrome1", True),
    )


def _bool(spec: dict[str, Any], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ModelCardError(f"input.{key} must be true or false")
    return value


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelCardError(f"{what} must be a positive integer, not {value!r}")
    return value


def _input_size(spec: dict[str, Any], layout: str) -> tuple[int, int, int]:
    if "height" in spec or "width" in spec:
        return (
            _positive_int(spec.get("height"), "input.height"),
            _positive_int(spec.get("width"), "input.width"),
            _positive_int(spec.get("channels", 3), "input.channels"),
        )
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 4:
        raise ModelCardError("input needs height/width/channels or a 4-item shape")
    dims = shape[1:4]
    if layout == "NCHW":
        channels, height, width = dims
    else:
        height, width, channels = dims
    return (
        _positive_int(height, "input height"),
        _positive_int(width, "input width"),
        _positive_int(channels, "input channels"),
    )


def _resize(spec: dict[str, Any], derived: list[str]) -> str:
    text = spec.get("resize", "bilinear")
    if not isinstance(text, str):
        raise ModelCardError("input.resize must be a string")
    lowered = text.strip().lower()
    if lowered in RESIZE_METHODS:
        return lowered
    lowered = lowered.replace("nearest-neighbour", "nearest").replace("nearest-neighbor", "nearest")
    found = [m for m in RESIZE_METHODS if m in lowered]
    if len(found) != 1:
        raise ModelCardError(f"input.resize {text!r}: expected one of {', '.join(RESIZE_METHODS)}")
    if "preserv" in lowered and "no aspect" not in lowered:
        raise ModelCardError(f"input.resize {text!r}: aspect-ratio preserving resize unsupported")
    derived.append(f"resize {found[0]} from the text {text!r}")
    return found[0]


_DIVIDE_SUBTRACT = re.compile(
    r"x\s*/\s*(?P<div>\d+(?:\.\d+)?)\s*(?:(?P<sign>[-+])\s*(?P<off>\d+(?:\.\d+)?))?"
)


def _floats(value: object, channels: int, what: str) -> tuple[float, ...]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        raise ModelCardError(f"input.scaling.{what} must be a number or a list of numbers")
    if len(items) not in (1, channels):
        raise ModelCardError(f"input.scaling.{what} needs 1 or {channels} values")
    return tuple(float(v) for v in items if isinstance(v, int | float))


def _scaling(value: object, channels: int, derived: list[str]) -> Scaling:
    if value is None:
        derived.append("scaling x/255 (none stated)")
        return Scaling()
    if isinstance(value, dict):
        scaling = Scaling(
            divisor=_floats(value.get("divisor", 255.0), 1, "divisor")[0],
            mean=_floats(value.get("mean", 0.0), channels, "mean"),
            std=_floats(value.get("std", 1.0), channels, "std"),
        )
        if scaling.divisor == 0 or 0.0 in scaling.std:
            raise ModelCardError("input.scaling divisor and std must not be zero")
        return scaling
    if isinstance(value, str):
        match = _DIVIDE_SUBTRACT.search(value)
        if match:
            divisor = float(match["div"])
            offset = float(match["off"] or 0.0)
            mean = offset if match["sign"] == "-" else -offset
            derived.append(f"scaling x/{divisor:g} - {mean:g} from the text {value!r}")
            return Scaling(divisor=divisor, mean=(mean,), std=(1.0,))
    raise ModelCardError(
        f"input.scaling {value!r}: give {{'divisor': D, 'mean': M, 'std': S}} or text 'x / D - M'"
    )


def _dicom_window(spec: dict[str, Any], derived: list[str]) -> DicomWindow:
    value = spec.get("dicom_window")
    if value is None:
        derived.append("dicom_window: 0.5-99.5 percentile window to 8 bits (the default)")
        return DicomWindow()
    if not isinstance(value, dict):
        raise ModelCardError("input.dicom_window must be an object")
    method = value.get("method", "percentile")
    if method not in WINDOW_METHODS:
        raise ModelCardError(f"input.dicom_window.method must be one of {WINDOW_METHODS}")
    low, high = value.get("low", 0.5), value.get("high", 99.5)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise ModelCardError("input.dicom_window low and high must be numbers")
    if not 0.0 <= float(low) < float(high) <= 100.0:
        raise ModelCardError("input.dicom_window needs 0 <= low < high <= 100")
    return DicomWindow(method=method, low=float(low), high=float(high))
