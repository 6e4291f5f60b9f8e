"""AI models: registry of model folders (ONNX + model card), preprocessing, inference, evaluation.

Imports nothing from ``pacs``, ``storage`` or the doors; the pipeline calls it.
"""

from ai_models.card import InputContract, ModelCard, ModelCardError, load_card
from ai_models.classifier import Classifier, Prediction
from ai_models.preprocess import UnsupportedImage, display_image, model_input
from ai_models.registry import ModelRegistry

__all__ = [
    "Classifier",
    "InputContract",
    "ModelCard",
    "ModelCardError",
    "ModelRegistry",
    "Prediction",
    "UnsupportedImage",
    "display_image",
    "load_card",
    "model_input",
]
