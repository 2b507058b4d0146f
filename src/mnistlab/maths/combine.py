"""Combining members: the weighted mean of their class probabilities, optionally each at its own temperature.

    >>> import numpy as np
    >>> a = np.array([[0.9, 0.1], [0.4, 0.6]]); b = np.array([[0.5, 0.5], [0.8, 0.2]])
    >>> average_probabilities([a, b]).round(3).tolist()
    [[0.7, 0.3], [0.6, 0.4]]
    >>> average_probabilities([a, b], weights=[3, 1])[1].round(3).tolist()
    [0.5, 0.5]
    >>> np.allclose(ensemble_logits([np.log(a), np.log(b)], weights=[1, 0]), np.log(a))   # weight 0: left out
    True

Pure functions of arrays: no files, no labels. :mod:`mnistlab.frameworks.inference` serves an ensemble
directory with :func:`ensemble_logits`, so a served ensemble and its saved logits agree.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mnistlab.maths.metrics import softmax


def average_probabilities(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean of ``[N, classes]`` probability arrays; weights are normalised to sum to 1."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stack),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {len(stack)} non-negative weights with a positive sum, got {list(w)}")
    return np.tensordot(w / w.sum(), stack, axes=1)


def member_probabilities(logits: Sequence[np.ndarray], temperatures: Sequence[float] | None = None) -> list[np.ndarray]:
    """Each member's ``softmax(logits / T)``; T = 1 for every member when ``temperatures`` is None."""
    temps = [1.0] * len(logits) if temperatures is None else [float(t) for t in temperatures]
    if len(temps) != len(logits) or not all(np.isfinite(t) and t > 0 for t in temps):
        raise ValueError(f"need {len(logits)} positive temperatures, got {temps}")
    return [softmax(z, t) for z, t in zip(logits, temps)]


def ensemble_logits(logits: Sequence[np.ndarray], weights: Sequence[float] | None = None,
                    temperatures: Sequence[float] | None = None) -> np.ndarray:
    """Log of the averaged softmax probabilities: logits whose softmax is the ensemble's probabilities."""
    probs = average_probabilities(member_probabilities(logits, temperatures), weights)
    return np.log(np.clip(probs, 1e-30, None)).astype(np.float32)
