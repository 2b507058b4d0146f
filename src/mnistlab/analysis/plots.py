"""Figures of one run's training and test results: curves, confusion matrices, per-class scores.

    >>> from mnistlab.analysis.plots import plot_training_curves
    >>> history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 1 - 0.1 / e,
    ...             "val_acc": 1 - 0.12 / e, "lr": 1e-3} for e in (1, 2, 3)]    # history.csv's rows
    >>> plot_training_curves(history, best_epoch=3, path="plots/curves.png")
    {'overfitting': False, 'overfitting_epochs': [], 'best_epoch': 3}

Every function takes plain data (history rows, a confusion matrix, per-class dicts), writes one
PNG of the size in :data:`SIZES` and returns what it found, so plots never recompute predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.colors import PowerNorm

from mnistlab.analysis.style import BLUE, GREEN, ORANGE, RED, figure

# (width, height) in inches of each figure; at style.DPI pixels per inch.
SIZES = {"training_curves": (13.0, 4.2), "confusion_matrices": (13.0, 6.2), "per_class": (10.0, 4.2)}


def overfitting_epochs(history: Sequence[dict[str, float]]) -> list[int]:
    """Epochs where the validation loss rose while the training loss fell (from the epoch before)."""
    return [int(cur["epoch"]) for prev, cur in zip(history, history[1:])
            if cur["val_loss"] > prev["val_loss"] and cur["train_loss"] < prev["train_loss"]]


def plot_training_curves(history: Sequence[dict[str, float]], best_epoch: int | None,
                         path: str | Path) -> dict[str, Any]:
    """Loss, accuracy and learning rate per epoch; the selected epoch marked, overfitting shaded."""
    epochs = np.array([r["epoch"] for r in history])
    col = {k: np.array([r[k] for r in history]) for k in ("train_loss", "val_loss", "train_acc", "val_acc", "lr")}
    flagged = overfitting_epochs(history)
    with figure(path, *SIZES["training_curves"], title="Training curves") as fig:
        ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
        panels = ((ax_loss, "loss", 1.0, "cross-entropy"), (ax_acc, "acc", 100.0, "accuracy (%)"))
        for ax, key, scale, ylabel in panels:
            ax.plot(epochs, col[f"train_{key}"] * scale, "o-", color=BLUE, label="train")
            ax.plot(epochs, col[f"val_{key}"] * scale, "s-", color=ORANGE, label="validation")
            ax.set(xlabel="epoch", ylabel=ylabel, title="Loss" if key == "loss" else "Accuracy")
        ax_lr.plot(epochs, col["lr"], "o-", color=GREEN)
        ax_lr.set(xlabel="epoch", ylabel="learning rate (epoch start)", title="Learning rate")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        for ax in (ax_loss, ax_acc, ax_lr):
            ax.xaxis.get_major_locator().set_params(integer=True)
            for e in flagged:
                ax.axvspan(e - 0.5, e + 0.5, color=RED, alpha=0.08, lw=0)
            if best_epoch:
                ax.axvline(best_epoch, color="black", ls="--", lw=1, alpha=0.7)
        if best_epoch and best_epoch in epochs:
            i = int(np.where(epochs == best_epoch)[0][0])
            ax_loss.plot(best_epoch, col["val_loss"][i], "*", ms=16, color=RED, label=f"selected (epoch {best_epoch})")
            ax_acc.plot(best_epoch, col["val_acc"][i] * 100, "*", ms=16, color=RED, label=f"selected (epoch {best_epoch})")
        ax_loss.legend()
        ax_acc.legend(loc="lower right")
        if flagged:
            ax_loss.text(0.02, 0.02, f"overfitting? val loss ↑ while train loss ↓ at epoch {', '.join(map(str, flagged))}",
                         transform=ax_loss.transAxes, color=RED, fontsize=10)
    return {"overfitting": bool(flagged), "overfitting_epochs": flagged, "best_epoch": best_epoch}


def _annotate(ax, values: np.ndarray, text: np.ndarray, norm) -> None:
    dark = norm(values) > 0.55
    for (i, j), label in np.ndenumerate(text):
        if label:
            ax.text(j, i, label, ha="center", va="center", fontsize=9,
                    color="white" if dark[i, j] else "black")


def plot_confusion_matrices(cm: np.ndarray, class_names: Sequence[str], path: str | Path) -> dict[str, Any]:
    """Counts and row-normalised confusion matrices; per-class accuracy labels the rows."""
    cm = np.asarray(cm)
    k = len(class_names)
    rows = cm.sum(1, keepdims=True)
    norm_cm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    per_class_acc = np.diag(norm_cm)
    with figure(path, *SIZES["confusion_matrices"], title="Confusion matrices (test)") as fig:
        ax_n, ax_r = fig.subplots(1, 2)
        # A power norm keeps the few off-diagonal errors visible next to the large diagonal.
        n_norm = PowerNorm(0.3, vmin=0, vmax=max(int(cm.max()), 1))
        ax_n.imshow(cm, norm=n_norm, cmap="Blues")
        _annotate(ax_n, cm, np.where(cm > 0, cm.astype(str), ""), n_norm)
        ax_n.set_title("Counts")
        r_norm = PowerNorm(0.3, vmin=0, vmax=1)
        ax_r.imshow(norm_cm, norm=r_norm, cmap="Blues")
        _annotate(ax_r, norm_cm, np.where(norm_cm >= 0.005, np.char.mod("%.0f", norm_cm * 100), ""), r_norm)
        ax_r.set_title("Row-normalised (%)")
        for ax in (ax_n, ax_r):
            ax.grid(False)
            ax.set_xticks(range(k), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0, ha="right"
                          if max(map(len, class_names)) > 2 else "center")
            ax.set_xlabel("predicted")
        ax_n.set_yticks(range(k), class_names)
        ax_n.set_ylabel("true")
        ax_r.set_yticks(range(k), [f"{n}  {a:.1%}" for n, a in zip(class_names, per_class_acc)])
        ax_r.set_ylabel("true  (per-class accuracy)")
    return {"per_class_accuracy": per_class_acc.tolist()}


def plot_per_class(per_class: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Grouped bars of precision, recall and F1 for every class."""
    names = [c["name"] for c in per_class]
    x = np.arange(len(names))
    values = {m: np.array([c[m] for c in per_class]) for m in ("precision", "recall", "f1")}
    low = min(float(v.min()) for v in values.values())
    with figure(path, *SIZES["per_class"], title="Per-class precision, recall and F1 (test)") as fig:
        ax = fig.add_subplot()
        for i, (metric, color) in enumerate(zip(values, (BLUE, ORANGE, GREEN))):
            ax.bar(x + (i - 1) * 0.27, values[metric] * 100, width=0.27, color=color, label=metric)
        ax.set_xticks(x, names, rotation=30 if max(map(len, names)) > 2 else 0)
        # Zoom on the top of the scale: all classes are usually above 90%.
        ax.set_ylim(max(0.0, np.floor(low * 100 - 2)), 100.5)
        ax.set(xlabel="class", ylabel="%")
        ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
