"""Choosing members and their weights from validation predictions only.

    >>> import numpy as np
    >>> labels = np.array([0, 1, 1, 0])
    >>> good = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    >>> noise = np.full((4, 2), 0.5)
    >>> s = select_weights("caruana", [good, noise], labels)
    >>> s.weights, s.metric
    ([1.0, 0.0], 'val_nll')

Every function here takes the validation probabilities and labels, and nothing else: the test
split cannot reach a choice made here (``tests/test_ensemble_select.py`` checks that the weights
of :func:`~mnistlab.ensembles.build.ensemble_runs` do not move when the test labels are garbage).

The methods (``METHODS``):

* ``caruana`` — greedy forward selection with replacement (Caruana et al., ICML 2004, "Ensemble
  selection from libraries of models"): start from the best *k* members by validation NLL (the
  "sorted initialisation", *k* chosen on validation), then add, one at a time and with
  replacement, the member whose addition lowers the validation NLL of the averaged probabilities
  most; after ``rounds`` additions keep the best step seen. The number of times a member was
  picked is its weight. The metric is the validation NLL, not accuracy: with 5,000 validation
  images and members at ~99.6%, accuracy moves in steps of one image, most candidates tie and the
  climb follows noise; the NLL is smooth and a proper score, so ties are rare.
* ``fitted`` — the mixture weights on the simplex that minimise the validation NLL (convex in the
  weights; solved by the EM updates for mixture weights, which never leave the simplex).
* ``all`` — every member with the same weight (the plain average).
* ``accuracy`` — weight ∝ validation accuracy (the older ``--weighted``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

METHODS = ("caruana", "fitted", "all", "accuracy")
METRIC = {"caruana": "val_nll", "fitted": "val_nll", "all": None, "accuracy": "val_accuracy"}
DEFAULT_ROUNDS = 50  # additions after the sorted start; the weights settle long before on 5-30 members
MAX_ROUNDS = 10_000
EM_ITERATIONS, EM_TOLERANCE = 2000, 1e-9
TINY = 1e-300  # a probability of exactly 0 (softmax underflow) must not give log(0)


@dataclass
class Selection:
    """The outcome: one weight per member (summing to 1), and how it was reached."""

    method: str
    weights: list[float]
    metric: str | None = None
    counts: list[int] | None = None  # caruana: times each member was picked
    trace: list[dict[str, Any]] = field(default_factory=list)  # caruana: one entry per step

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "metric": self.metric, "weights": self.weights, "counts": self.counts,
                "trace": self.trace}


def label_probabilities(probs: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """``[members, N]``: the probability each member gives each image's true class."""
    labels = np.asarray(labels).astype(np.int64)
    rows = np.arange(len(labels))
    return np.stack([np.asarray(p, dtype=np.float64)[rows, labels] for p in probs])


def mixture_nll(q: np.ndarray, weights: np.ndarray) -> float:
    """Validation NLL of the weighted average of the members whose true-class probabilities are ``q``."""
    w = np.asarray(weights, dtype=np.float64)
    return float(-np.log(np.maximum(w @ q / w.sum(), TINY)).mean())


def caruana(q: np.ndarray, rounds: int = DEFAULT_ROUNDS) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Counts per member from sorted initialisation + greedy additions with replacement (lowest NLL)."""
    m = len(q)
    alone = np.array([mixture_nll(q[i:i + 1], [1.0]) for i in range(m)])
    order = np.argsort(alone, kind="stable")
    prefix = np.cumsum(q[order], axis=0)  # the sum of the best k members' probabilities, for every k
    start = [float(-np.log(np.maximum(prefix[k] / (k + 1), TINY)).mean()) for k in range(m)]
    k = int(np.argmin(start)) + 1  # the first minimum: the smallest such start
    counts = np.zeros(m, dtype=np.int64)
    counts[order[:k]] = 1
    best_nll, best_counts = start[k - 1], counts.copy()
    trace = [{"step": 0, "start": [int(i) for i in order[:k]], "val_nll": best_nll}]
    mix = counts @ q
    for step in range(1, rounds + 1):
        total = counts.sum() + 1
        candidates = -np.log(np.maximum((mix[None, :] + q) / total, TINY)).mean(axis=1)
        pick = int(np.argmin(candidates))  # ties: the earlier member, so the result never depends on luck
        counts[pick] += 1
        mix = mix + q[pick]
        trace.append({"step": step, "added": pick, "val_nll": float(candidates[pick])})
        if candidates[pick] < best_nll - 1e-12:
            best_nll, best_counts = float(candidates[pick]), counts.copy()
    return best_counts, trace


def fitted_weights(q: np.ndarray) -> np.ndarray:
    """Mixture weights minimising the validation NLL: EM's fixed-point updates, from the uniform start."""
    w = np.full(len(q), 1.0 / len(q))
    q = np.maximum(q, TINY)
    for _ in range(EM_ITERATIONS):
        new = w * (q / (w @ q)).mean(axis=1)  # each member's mean responsibility for the true class
        if np.abs(new - w).max() < EM_TOLERANCE:
            return new / new.sum()
        w = new
    return w / w.sum()


def select_weights(method: str, val_probs: Sequence[np.ndarray], val_labels: np.ndarray, *,
                   rounds: int = DEFAULT_ROUNDS) -> Selection:
    """The weights of ``method`` for members with these validation probabilities (``[N, classes]`` each)."""
    if method not in METHODS:
        raise ValueError(f"unknown selection {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be between 0 and {MAX_ROUNDS}, got {rounds}")
    m = len(val_probs)
    if method == "all":
        return Selection(method, [1.0 / m] * m)
    if method == "accuracy":
        accs = np.array([float((np.asarray(p).argmax(1) == val_labels).mean()) for p in val_probs])
        w = accs / accs.sum() if accs.sum() > 0 else np.full(m, 1.0 / m)
        return Selection(method, w.tolist(), METRIC[method])
    q = label_probabilities(val_probs, val_labels)
    if method == "fitted":
        return Selection(method, fitted_weights(q).tolist(), METRIC[method])
    counts, trace = caruana(q, rounds)
    return Selection(method, (counts / counts.sum()).tolist(), METRIC[method], counts.tolist(), trace)


def best_member(val_accuracies: Sequence[float], val_nlls: Sequence[float]) -> int:
    """The index of the best single member on validation: highest accuracy, then lowest NLL, then first."""
    return min(range(len(val_accuracies)), key=lambda i: (-val_accuracies[i], val_nlls[i], i))
