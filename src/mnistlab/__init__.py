"""mnistlab: train, compare, explain, export and serve image classifiers on MNIST and Fashion-MNIST.

    >>> import mnistlab
    >>> sorted(mnistlab.__all__)[:4]
    ['CheckFailed', 'Comparison', 'Explanation', 'Metrics']
    >>> isinstance(mnistlab.UserError("x"), Exception)
    True

The public API, in a notebook or a program::

    run = mnistlab.train("simple", epochs=1, train_subset=5000, seed=0, out="runs/api")
    m = run.evaluate()                  # the test split, read once; m.accuracy, m["accuracy"]
    p = run.predict(images)             # arrays, tensors, PIL images or file paths
    same = mnistlab.load("runs/api")    # any run directory
    same.export("onnx")                 # the self-checked ONNX export → its path

``import mnistlab`` imports neither torch nor TensorFlow: each name below is loaded from
:mod:`mnistlab.api` the first time it is used. Mistakes raise :class:`UserError` with the one-line
message the command line prints; :class:`CheckFailed` means the work ran but failed its own check.
"""

from __future__ import annotations

import importlib
from typing import Any

from mnistlab.errors import CheckFailed, UserError

from mnistlab.version import __version__  # noqa: E402, F401

_API = ("Comparison", "Explanation", "Metrics", "Prediction", "Run", "compare", "ensemble", "load", "train")
__all__ = ["CheckFailed", "UserError", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("mnistlab.api"), name)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
