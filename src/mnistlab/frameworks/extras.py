"""The frameworks mnistlab knows, and whether each one's optional extra is installed.

    >>> from mnistlab.frameworks.extras import FRAMEWORKS, available
    >>> FRAMEWORKS
    ('torch', 'keras')
    >>> available("torch")
    True

This module imports nothing heavy and nothing of mnistlab but its errors, so the ground floor
(``config.py``) can name the frameworks without loading the framework table or TensorFlow.
"""

from __future__ import annotations

import importlib.util

from mnistlab.errors import UserError

FRAMEWORKS = ("torch", "keras")
LABELS = {"torch": "PyTorch", "keras": "Keras"}
# The top-level packages each framework needs, checked without importing them (TF takes seconds).
_PACKAGES = {"torch": ("torch",), "keras": ("keras", "tensorflow")}
KERAS_MISSING = "Keras is not installed; pip install 'mnistlab[keras]'"


def check_name(framework: str) -> str:
    """``framework`` itself when mnistlab knows it; else a one-line :class:`UserError` naming the choices."""
    if framework not in FRAMEWORKS:
        raise UserError(f"unknown framework {framework!r}; choose one of: {', '.join(FRAMEWORKS)}")
    return framework


def available(framework: str) -> bool:
    """Whether ``framework``'s packages can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in _PACKAGES[check_name(framework)])


def require(framework: str) -> None:
    """Raise a one-line :class:`UserError` (exit 2) when ``framework``'s extra is not installed."""
    if not available(framework):
        raise UserError(KERAS_MISSING if framework == "keras" else
                        f"{LABELS[framework]} is not installed; pip install 'mnistlab[{framework}]'")


def keras_available() -> bool:
    """Whether Keras and TensorFlow can be imported."""
    return available("keras")


def require_keras() -> None:
    require("keras")
