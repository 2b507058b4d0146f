"""Calibration: reliability bins and temperature scaling, as pure functions of logits and labels.

    >>> import numpy as np
    >>> logits = np.array([[4.0, 0.0]] * 4)          # 98% confident ...
    >>> labels = np.array([0, 0, 0, 1])              # ... but right only 3 times in 4
    >>> round(fit_temperature(logits, labels), 2)    # T = 4 / ln 3 brings confidence to 75%
    3.64

The temperature is fitted on the validation split only; :func:`calibrate` applies it to the test
split to report the ECE before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from mnistlab.maths.metrics import ece, nll, softmax

# log T is searched in [-4, 4]: T from 0.018 to 55 covers every network seen in practice.
LOG_T_BOUNDS = (-4.0, 4.0)


def fit_temperature(val_logits: np.ndarray, val_labels: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` on these logits."""
    val_logits = np.asarray(val_logits, dtype=np.float64)
    val_labels = np.asarray(val_labels).astype(np.int64)
    if len(val_labels) == 0:
        raise ValueError("cannot fit a temperature on zero examples")
    # NLL is convex in 1/T, so a bounded 1-D search in log T finds the global minimum.
    result = minimize_scalar(lambda log_t: nll(val_logits, val_labels, float(np.exp(log_t))),
                             bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def reliability(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15,
                temperature: float = 1.0) -> dict[str, Any]:
    """Per-bin count, accuracy and mean confidence over equal-width confidence bins (lo, hi].

    Uses the same bins as :func:`mnistlab.maths.metrics.ece`, so the bars of a reliability
    diagram add up to the ECE printed on it. Empty bins hold NaN.
    """
    probs = softmax(logits, temperature)
    conf, pred = probs.max(1), probs.argmax(1)
    correct = (pred == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(bins, weights=correct, minlength=n_bins) / counts
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / counts
    return {"edges": edges, "counts": counts, "accuracy": acc, "confidence": mean_conf,
            "ece": ece(logits, labels, n_bins=n_bins, temperature=temperature)}


def calibrate(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
              test_labels: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """Fit T on validation, then report ECE and NLL on test before and after dividing by T."""
    t = fit_temperature(val_logits, val_labels)
    return {
        "temperature": t,
        "n_bins": n_bins,
        "val_ece_before": ece(val_logits, val_labels, n_bins),
        "val_ece_after": ece(val_logits, val_labels, n_bins, temperature=t),
        "ece_before": ece(test_logits, test_labels, n_bins),
        "ece_after": ece(test_logits, test_labels, n_bins, temperature=t),
        "nll_before": nll(test_logits, test_labels),
        "nll_after": nll(test_logits, test_labels, temperature=t),
    }
