"""Frameworks other than PyTorch, each behind an optional extra; imported only when used.

    >>> from mnistlab.frameworks import keras_available, train_function
    >>> train_function("torch").__module__
    'mnistlab.training.trainer'

``train_function(name)`` hands back the trainer for a framework with one signature,
``train(cfg, out, *, data_dir, resume, force, progress)``; asking for Keras without
``mnistlab[keras]`` installed raises a one-line :class:`~mnistlab.errors.UserError` (exit 2).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from mnistlab.errors import UserError

FRAMEWORKS = ("torch", "keras")
KERAS_MISSING = "Keras is not installed; pip install 'mnistlab[keras]'"


def keras_available() -> bool:
    """Whether Keras and TensorFlow can be imported (checked without importing them: TF takes seconds)."""
    return all(importlib.util.find_spec(name) is not None for name in ("keras", "tensorflow"))


def require_keras() -> None:
    if not keras_available():
        raise UserError(KERAS_MISSING)


def train_function(framework: str) -> Callable[..., dict[str, Any]]:
    """The ``train`` function of ``framework`` (``torch`` or ``keras``)."""
    if framework == "torch":
        from mnistlab.training.trainer import train

        return train
    if framework == "keras":
        require_keras()
        from mnistlab.frameworks.keras.train import train

        return train
    raise UserError(f"unknown framework {framework!r}; choose one of: {', '.join(FRAMEWORKS)}")
