"""Comparison figures: accuracy against size and training time, per-class accuracy by model.

    >>> from mnistlab.analysis.compare import compare_runs
    >>> from mnistlab.analysis.plots_compare import plot_comparisons
    >>> paths = plot_comparisons(compare_runs(["runs/simple", "runs/simple-s1"]), "comparison")
    >>> sorted(p.name for p in paths.values())
    ['accuracy_vs_params.png', 'accuracy_vs_train_time.png', 'per_class_accuracy.png']

Each model group is one point with an error bar of ±1 sample std when it has several seeds;
every single run is drawn faintly behind it so the spread stays visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.analysis.style import PALETTE, figure

SIZES = {"accuracy_vs_params": (8.0, 5.0), "accuracy_vs_train_time": (8.0, 5.0), "per_class_accuracy": (11.0, 4.8)}


def _scatter(ax, result: dict[str, Any], key: str) -> None:
    for group, color in zip(result["groups"], PALETTE * 4):
        members = [r for r in result["runs"] if r["model"] == group["model"] and r[key] is not None]
        if not members or group[key] is None:
            continue
        ax.scatter([r[key] for r in members], [r["accuracy"] * 100 for r in members], color=color, alpha=0.35, s=30)
        ax.errorbar(group[key], group["accuracy_mean"] * 100, yerr=(group["accuracy_std"] or 0) * 100,
                    fmt="o", ms=10, color=color, capsize=5)
        ax.annotate(f"{group['model']} (n={group['runs']})", (group[key], group["accuracy_mean"] * 100),
                    textcoords="offset points", xytext=(8, 6), fontsize=11, color=color, fontweight="bold")
    ax.set_ylabel("test accuracy (%)")
    ax.margins(x=0.25, y=0.25)


def plot_comparisons(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write the three comparison figures into ``out_dir``; return their paths by name."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / f"{name}.png" for name in SIZES}
    with figure(paths["accuracy_vs_params"], *SIZES["accuracy_vs_params"], title="Accuracy vs parameters") as fig:
        ax = fig.add_subplot()
        _scatter(ax, result, "params")
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale)")
    with figure(paths["accuracy_vs_train_time"], *SIZES["accuracy_vs_train_time"],
                title="Accuracy vs training time") as fig:
        ax = fig.add_subplot()
        _scatter(ax, result, "train_seconds")
        ax.set_xlabel("training wall time (s)")
    names = result["class_names"]
    groups = result["groups"]
    with figure(paths["per_class_accuracy"], *SIZES["per_class_accuracy"], title="Per-class accuracy by model (test)") as fig:
        ax = fig.add_subplot()
        x = np.arange(len(names))
        width = 0.8 / max(len(groups), 1)
        lowest = 100.0
        for i, (group, color) in enumerate(zip(groups, PALETTE * 4)):
            acc = np.array(group["per_class_accuracy"]) * 100
            lowest = min(lowest, float(acc.min()))
            ax.bar(x + (i - (len(groups) - 1) / 2) * width, acc, width=width, color=color, label=group["model"])
        ax.set_xticks(x, names, rotation=30 if max(map(len, names)) > 2 else 0)
        ax.set_ylim(max(0.0, np.floor(lowest - 2)), 100.5)
        ax.set(xlabel="class", ylabel="accuracy (%)")
        ax.legend(ncols=min(len(groups), 4), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return paths
