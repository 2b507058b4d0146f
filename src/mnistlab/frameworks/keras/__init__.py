"""Keras 3 (TensorFlow backend) in the framework registry: the twins of the models, on the CPU.

    >>> from mnistlab.frameworks.registry import TABLE
    >>> TABLE["keras"].can("explain"), TABLE["keras"].can("onnx"), TABLE["keras"].can("litert")
    (True, True, True)

This module imports nothing heavy. The Keras pieces — :mod:`~mnistlab.frameworks.keras.runtime`
(TensorFlow, loading and predicting), :mod:`~mnistlab.frameworks.keras.models` (the twins),
:mod:`~mnistlab.frameworks.keras.train`, :mod:`~mnistlab.frameworks.keras.explain` and
:mod:`~mnistlab.frameworks.keras.export` (ONNX, LiteRT, SavedModel through ``model.export``) — are
loaded when a Keras run is trained or read.
"""

from __future__ import annotations

from types import ModuleType

from mnistlab.frameworks.registry import Framework, register

PYTORCH_ONLY = "for now; train a PyTorch run of the same architecture for it (--framework torch)"


def _trainer() -> ModuleType:
    from mnistlab.frameworks.keras import train

    return train


def _predictor() -> ModuleType:
    from mnistlab.frameworks.keras import runtime

    return runtime


def _explainer() -> ModuleType:
    from mnistlab.frameworks.keras import explain

    return explain


def _exporter() -> ModuleType:
    from mnistlab.frameworks.keras import export

    return export


KERAS = register(Framework(
    name="keras", label="Keras", model_file="model.keras", packages=("keras", "tensorflow"),
    install="pip install 'mnistlab[keras]'",
    capabilities=frozenset({"resume", "amp", "explain", "onnx", "int8", "litert", "saved_model"}),
    reasons={
        "prune": f"pruning is PyTorch-only {PYTORCH_ONLY}",
        "mc_dropout": "MC dropout is computed with the PyTorch model's dropout layers; analyse a PyTorch run for it",
        "transfer": "transfer runs are PyTorch runs; use --framework torch",
        "ema": "--ema-decay is PyTorch-only for now; drop it for --framework keras",
        "distributed": "several processes (torchrun, --nproc) train PyTorch runs only; drop --nproc for Keras",
        "cuda": "Keras trains on the CPU here (tensorflow-cpu); use --device cpu or auto",
    },
    trainer=_trainer, predictor=_predictor, explainer=_explainer, exporter=_exporter, run_prefix="keras-"))
