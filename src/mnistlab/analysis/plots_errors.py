"""Figures of examples: the most confident mistakes, the most confused pairs, sample images.

    >>> from mnistlab.analysis.plots_errors import plot_misclassified
    >>> from mnistlab.data.datasets import load_test_split
    >>> from mnistlab.maths.metrics import softmax
    >>> from mnistlab.runs import load_predictions, read_config
    >>> images, _ = load_test_split("mnist", purpose="pictures of a run's mistakes")
    >>> logits, labels = load_predictions("runs/simple/predictions.npz")
    >>> errors = plot_misclassified(images.numpy(), labels, softmax(logits),
    ...                             read_config("runs/simple").data.class_names, "errors.png", n=8)
    >>> sorted(errors[0])      # the most confident mistake first
    ['confidence', 'index', 'predicted', 'true']

Images are the uint8 test images; the probabilities come from the saved logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab.analysis.style import BLUE, RED, figure
from mnistlab.data.conform import for_display

GRID_COLS = 6
# The image grids are placed by hand (figure fractions): constrained layout took 2-4 s to draw each.
EXAMPLES_MARGINS = {"left": 0.15, "right": 0.97, "top": 0.93, "bottom": 0.01, "wspace": 0.05, "hspace": 0.05}
ERRORS_MARGINS = {"left": 0.01, "right": 0.99, "top": 0.9, "bottom": 0.01, "wspace": 0.1, "hspace": 0.45}
SIZES = {"misclassified": (11.0, 8.6), "confused_pairs": (7.0, 4.6), "examples": (7.0, 7.5)}


def most_confident_errors(probs: np.ndarray, labels: np.ndarray, n: int = 24) -> list[dict[str, Any]]:
    """The ``n`` wrong predictions with the highest confidence, most confident first."""
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    return [{"index": int(i), "true": int(labels[i]), "predicted": int(pred[i]), "confidence": float(conf[i])}
            for i in order]


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                       class_names: Sequence[str], path: str | Path, n: int = 24) -> list[dict[str, Any]]:
    """A grid of the most confident errors, each titled with true label, prediction and confidence."""
    errors = most_confident_errors(probs, labels, n)
    rows = max(1, int(np.ceil(n / GRID_COLS)))
    with figure(path, *SIZES["misclassified"],
                title=f"Most confident errors (test): {len(errors)} of {int((probs.argmax(1) != labels).sum()):,}",
                margins=ERRORS_MARGINS) as fig:
        axes = fig.subplots(rows, GRID_COLS, squeeze=False).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, e in zip(axes, errors):
            ax.imshow(for_display(images[e["index"]]), cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(f"true {class_names[e['true']]}\npred {class_names[e['predicted']]} "
                         f"({e['confidence']:.0%})", fontsize=11, color=RED, fontweight="normal")
        if not errors:
            axes[0].text(0.0, 0.5, "no errors on the test set", fontsize=14)
    return errors


def plot_confused_pairs(confusions: Sequence[dict[str, Any]], class_names: Sequence[str],
                        path: str | Path, n: int = 10) -> None:
    """Horizontal bars: the most frequent (true → predicted) pairs, as a rate of the true class."""
    pairs = list(confusions)[:n][::-1]
    with figure(path, *SIZES["confused_pairs"], title="Most confused pairs (test)") as fig:
        ax = fig.add_subplot()
        if not pairs:
            ax.text(0.5, 0.5, "no errors", ha="center", transform=ax.transAxes)
            ax.axis("off")
            return
        rates = [p["rate"] * 100 for p in pairs]
        bars = ax.barh(range(len(pairs)), rates, color=BLUE)
        ax.set_yticks(range(len(pairs)), [f"{class_names[p['true']]} → {class_names[p['predicted']]}" for p in pairs])
        ax.bar_label(bars, [f" {p['count']} ({p['rate']:.1%})" for p in pairs], fontsize=10)
        ax.set_xlim(0, max(rates) * 1.3)
        ax.set(xlabel="% of the true class predicted as the other", ylabel="true → predicted")
        ax.grid(axis="y", visible=False)


def plot_examples(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path,
                  per_class: int = 8) -> None:
    """The first ``per_class`` images of every class, one class per row."""
    k = len(class_names)
    with figure(path, *SIZES["examples"], title="Examples from the test split", margins=EXAMPLES_MARGINS) as fig:
        axes = fig.subplots(k, per_class, squeeze=False)
        for c in range(k):
            picks = np.flatnonzero(labels == c)[:per_class]
            for j, ax in enumerate(axes[c]):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if j < len(picks):
                    ax.imshow(for_display(images[picks[j]]), cmap="gray_r", vmin=0, vmax=255)
            axes[c][0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=11)
