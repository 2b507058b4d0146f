"""The framework table: for a framework name, its trainer, predictor, explainer and exporter.

    >>> from mnistlab.frameworks import TABLE, train_function
    >>> train_function("torch").__module__
    'mnistlab.training.trainer'
    >>> sorted(TABLE) == sorted(FRAMEWORKS)
    True

Every choice that depends on the framework goes through this table, so a new framework is one
entry here plus its modules. Entries name modules (loaded on first use), because importing
Keras imports TensorFlow (seconds) and a missing extra must be a one-line
:class:`~mnistlab.errors.UserError` (exit 2), not an ImportError:

- ``trainer``: a module with ``train(cfg, out, *, data_dir, resume, force, progress, data, config_extra)``
  and ``build(cfg, data, device, ctx, run_dir, threads)`` → (its loop step, config.json);
- ``predictor``: a module with ``predictor(run_dir, config)`` → a function from uint8 images
  ``[N, 28, 28]`` to logits ``[N, classes]`` (:func:`mnistlab.inference.predictor` adds ensembles),
  and ``inference_parts(run_dir, config, threads)`` → (model call, uint8 → prepared batch) for timings;
- ``explainer``: a module with ``explainer(run_dir, config)`` → an object with the methods of
  :class:`mnistlab.explain.backend.Explainer` (Grad-CAM, saliency, filters, feature maps);
- ``exporter``: the module with ``export_onnx``, or None;
- ``unsupported``: feature → a one-line reason, for what the framework cannot do (``export``,
  ``mc_dropout``), so every command says the same thing.

Modules named here must not import this package's face (``mnistlab.frameworks``), only its
leaves (``frameworks.extras``, ``frameworks.pytorch``, ``frameworks.keras``): that keeps the
arrows pointing one way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

from mnistlab.errors import UserError
from mnistlab.frameworks.extras import (  # noqa: F401  (the names callers use)
    FRAMEWORKS,
    KERAS_MISSING,
    LABELS,
    available,
    check_name,
    keras_available,
    require,
    require_keras,
)


@dataclass(frozen=True)
class Framework:
    """One framework's modules; see the module docstring for what each must define."""

    name: str
    trainer: str
    predictor: str
    explainer: str
    exporter: str | None = None
    unsupported: dict[str, str] = field(default_factory=dict)


TABLE: dict[str, Framework] = {
    "torch": Framework("torch", trainer="mnistlab.training.trainer", predictor="mnistlab.frameworks.pytorch",
                       explainer="mnistlab.explain.torch_backend", exporter="mnistlab.export.onnx_export"),
    "keras": Framework("keras", trainer="mnistlab.frameworks.keras.train", predictor="mnistlab.frameworks.keras",
                       explainer="mnistlab.frameworks.keras.explain", unsupported={
                           "export": "ONNX export is PyTorch-only for now (Keras 3 has no maintained ONNX "
                                     "converter); export a PyTorch run of the same architecture",
                           "mc_dropout": "MC dropout is computed with the PyTorch model's dropout layers; "
                                         "analyse a PyTorch run for it"}),
}
assert tuple(TABLE) == FRAMEWORKS, "the table and frameworks.extras.FRAMEWORKS list the same frameworks"


def get(framework: str) -> Framework:
    """The table entry of ``framework``, after checking that its extra is installed."""
    require(check_name(framework))
    return TABLE[framework]


def _load(module: str) -> ModuleType:
    return importlib.import_module(module)


def train_function(framework: str) -> Callable[..., dict[str, Any]]:
    """The ``train`` function of ``framework`` (``torch`` or ``keras``); one signature for all."""
    return _load(get(framework).trainer).train


def build_function(framework: str) -> Callable[..., tuple[Any, dict[str, Any]]]:
    """The ``build`` function of ``framework``: its loop step and config.json (throughput measurement uses it)."""
    return _load(get(framework).trainer).build


def predictor_factory(framework: str) -> Callable[..., Callable[[Any], Any]]:
    """``predictor(run_dir, config)`` of ``framework``: it returns uint8 images → logits."""
    return _load(get(framework).predictor).predictor


def inference_parts(framework: str) -> Callable[..., tuple[Callable, Callable]]:
    """``inference_parts(run_dir, config, threads)`` of ``framework``: (model call, uint8 → its input)."""
    return _load(get(framework).predictor).inference_parts


def explainer_factory(framework: str) -> Callable[..., Any]:
    """``explainer(run_dir, config)`` of ``framework``: Grad-CAM, saliency, filters, feature maps."""
    return _load(get(framework).explainer).explainer


def unsupported(framework: str, feature: str) -> str | None:
    """Why ``framework`` cannot do ``feature`` (one line), or None when it can; never imports anything."""
    entry = TABLE.get(framework)
    if entry is None:
        return f"not available for {framework} runs"
    return entry.unsupported.get(feature)


def exporter(framework: str) -> ModuleType:
    """The ONNX export module for ``framework``'s runs, or a one-line :class:`UserError` saying why not."""
    reason = unsupported(framework, "export")
    if reason or get(framework).exporter is None:
        raise UserError(f"a {LABELS.get(framework, framework)} run: {reason}")
    return _load(TABLE[framework].exporter)
