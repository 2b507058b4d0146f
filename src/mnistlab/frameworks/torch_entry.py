"""PyTorch in the framework registry: every capability but the TensorFlow formats; its pieces live across the package.

    >>> from mnistlab.frameworks.registry import TABLE
    >>> TABLE["torch"].model_file
    'model.safetensors'
"""

from __future__ import annotations

from types import ModuleType

from mnistlab.frameworks.registry import CAPABILITIES, Framework, register


def _trainer() -> ModuleType:
    from mnistlab.training import trainer

    return trainer


def _predictor() -> ModuleType:
    from mnistlab.frameworks import pytorch

    return pytorch


def _explainer() -> ModuleType:
    from mnistlab.explain import torch_backend

    return torch_backend


def _exporter() -> ModuleType:
    from mnistlab.export import onnx_export

    return onnx_export


TORCH = register(Framework(
    name="torch", label="PyTorch", model_file="model.safetensors", packages=("torch",),
    install="pip install 'mnistlab'", capabilities=frozenset(CAPABILITIES) - {"litert", "saved_model"},
    reasons={
        "litert": "LiteRT export is for Keras runs (TensorFlow converts them); export a PyTorch run to ONNX instead",
        "saved_model": "SavedModel export is for Keras runs (a TensorFlow format); "
                       "export a PyTorch run to ONNX instead",
    },
    trainer=_trainer, predictor=_predictor, explainer=_explainer, exporter=_exporter,
    explain_packages=("captum",), explain_install="pip install 'mnistlab[explain]'"))
