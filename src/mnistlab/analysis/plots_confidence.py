"""Figures of confidence and uncertainty: histograms, reliability diagrams, error-detection ROC.

    >>> from mnistlab.analysis.plots_confidence import plot_reliability
    >>> from mnistlab.maths.calibration import fit_temperature
    >>> from mnistlab.runs import load_predictions
    >>> temperature = fit_temperature(*load_predictions("runs/simple/val_predictions.npz"))
    >>> logits, labels = load_predictions("runs/simple/predictions.npz")     # the test split
    >>> sorted(plot_reliability(logits, labels, temperature, "reliability.png"))
    ['ece_after', 'ece_before']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from mnistlab.analysis.style import BLUE, GREY, PALETTE, RED, figure
from mnistlab.analysis.uncertainty import SCORE_LABELS
from mnistlab.maths.calibration import reliability
from mnistlab.maths.metrics import softmax

SIZES = {"confidence": (12.0, 4.2), "reliability": (12.0, 5.0), "uncertainty": (12.0, 4.8)}


def _split_hist(ax, values: np.ndarray, correct: np.ndarray, bins: np.ndarray, xlabel: str) -> None:
    """Correct and wrong predictions on one axis, each as a share of its own group."""
    for mask, color, label in ((correct, BLUE, "correct"), (~correct, RED, "wrong")):
        if mask.any():
            weights = np.full(int(mask.sum()), 100.0 / mask.sum())
            ax.hist(values[mask], bins=bins, weights=weights, color=color, alpha=0.6,
                    label=f"{label} (n={int(mask.sum()):,})")
    ax.set(xlabel=xlabel, ylabel="% of the group")
    ax.legend()


def plot_confidence(logits: np.ndarray, labels: np.ndarray, path: str | Path) -> None:
    """Histograms of the top probability, on a linear and a log scale, correct vs wrong."""
    probs = softmax(logits)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    with figure(path, *SIZES["confidence"], title="Confidence of correct and wrong predictions (test)") as fig:
        ax_lin, ax_log = fig.subplots(1, 2)
        _split_hist(ax_lin, conf, correct, np.linspace(0, 1, 26), "top probability")
        ax_lin.set_title("Share per bin")
        _split_hist(ax_log, conf, correct, np.linspace(0, 1, 26), "top probability")
        ax_log.set_yscale("log")
        ax_log.set_title("Same, log scale")


def _reliability_panel(ax, logits: np.ndarray, labels: np.ndarray, temperature: float, title: str) -> float:
    r = reliability(logits, labels, temperature=temperature)
    centers = (r["edges"][:-1] + r["edges"][1:]) / 2
    width = r["edges"][1] - r["edges"][0]
    filled = r["counts"] > 0
    ax.bar(centers[filled], r["accuracy"][filled], width=width * 0.95, color=BLUE, alpha=0.8, label="accuracy")
    gap = r["confidence"][filled] - r["accuracy"][filled]
    ax.bar(centers[filled], gap, bottom=r["accuracy"][filled], width=width * 0.95, facecolor=(0.84, 0.37, 0.0, 0.25),
           edgecolor=RED, linewidth=0.8, hatch="//", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "--", color=GREY, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"{title}: ECE {r['ece']:.2%}")
    ax.legend(loc="upper left", fontsize=10)
    return float(r["ece"])


def plot_reliability(logits: np.ndarray, labels: np.ndarray, temperature: float, path: str | Path) -> dict[str, float]:
    """Reliability diagrams on the test split before and after temperature scaling (T from val)."""
    with figure(path, *SIZES["reliability"],
                title=f"Reliability (test); temperature T = {temperature:.3f} fitted on validation") as fig:
        ax_before, ax_after = fig.subplots(1, 2)
        before = _reliability_panel(ax_before, logits, labels, 1.0, "Before (T = 1)")
        after = _reliability_panel(ax_after, logits, labels, temperature, f"After (T = {temperature:.2f})")
    return {"ece_before": before, "ece_after": after}


def plot_uncertainty(scores: dict[str, np.ndarray], errors: dict[str, np.ndarray], aurocs: dict[str, Any],
                     path: str | Path) -> None:
    """Left: predictive entropy of correct vs wrong. Right: ROC of each score for finding errors."""
    with figure(path, *SIZES["uncertainty"], title="Uncertainty: does the model know when it is wrong? (test)") as fig:
        ax_ent, ax_roc = fig.subplots(1, 2)
        entropy, wrong = scores["entropy"], errors["entropy"]
        top = max(float(entropy.max()), 1e-3)
        _split_hist(ax_ent, entropy, ~wrong, np.linspace(0, top, 31), "predictive entropy (nats)")
        ax_ent.set_yscale("log")
        ax_ent.set_title("Predictive entropy")
        for (name, score), color in zip(scores.items(), PALETTE):
            err = errors[name]
            auroc = aurocs[name]["auroc"]
            if auroc is None:
                continue
            fpr, tpr, _ = roc_curve(err, score)
            subset = f" (first {aurocs[name]['n']:,})" if aurocs[name]["n"] != len(wrong) else ""
            ax_roc.plot(fpr, tpr, color=color, lw=2, label=f"{SCORE_LABELS[name]}{subset}: AUROC {auroc:.3f}")
        ax_roc.plot([0, 1], [0, 1], "--", color=GREY, label="chance: 0.500")
        ax_roc.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-alarm rate (correct flagged)",
                   ylabel="errors caught", title="Error detection ROC")
        ax_roc.legend(loc="lower right", fontsize=10)

