"""Compare evaluated runs side by side: one row per run, one per model with mean ± std over seeds.

    >>> from mnistlab.analysis.compare import compare_runs, write_comparison
    >>> result = compare_runs(["runs/simple", "runs/simple-s1"])     # one model, two seeds
    >>> [(g["model"], g["runs"], g["seeds"]) for g in result["groups"]]
    [('simple', 2, [0, 1])]
    >>> sorted(write_comparison(result, "comparison"))      # the tables and figures it wrote
    ['accuracy_vs_params', 'accuracy_vs_train_time', 'csv', 'json', 'markdown', 'per_class_accuracy']

Reads each run's ``metrics.json`` (test metrics) and ``val_predictions.npz`` (for the temperature
behind the calibrated ECE). Runs of the same architecture, framework and data set form a group;
the spread across a group's seeds is the sample standard deviation (:mod:`mnistlab.maths.spread`;
"—" for a group of one run).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab import runs
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import load_metrics
from mnistlab.fileio import write_json, write_text
from mnistlab.maths.calibration import fit_temperature
from mnistlab.maths.metrics import ece
from mnistlab.maths.spread import mean_std_text, spread

COLUMNS = ("model", "runs", "seeds", "accuracy", "params", "size KB", "train s", "samples/s", "ECE", "ECE (T-scaled)")
RUN_FIELDS = ("name", "model", "run_dir", "arch", "framework", "dataset", "seed", "accuracy", "macro_f1", "params",
              "model_bytes", "train_seconds", "samples_per_s", "precision", "ece", "ece_scaled", "temperature")


def run_row(run_dir: Path) -> dict[str, Any]:
    """The comparison facts of one evaluated run."""
    config = runs.read_config(run_dir)
    m = load_metrics(run_dir)
    row = {"name": run_dir.name, "run_dir": str(run_dir), "arch": config.arch,
           "framework": config.framework, "dataset": config.dataset,
           "seed": config.seed, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
           "params": m.get("params", config.params), "model_bytes": m.get("model_bytes"),
           "train_seconds": m.get("train_seconds"), "samples_per_s": m.get("samples_per_s"), "ece": m["ece"],
           "precision": m.get("precision"), "per_class_accuracy": [c["accuracy"] for c in m["per_class"]],
           "class_names": [c["name"] for c in m["per_class"]]}
    if (run_dir / runs.VAL_PREDICTIONS).is_file():
        t = fit_temperature(*runs.load_predictions(run_dir / runs.VAL_PREDICTIONS))
        logits, labels = runs.load_predictions(run_dir / runs.PREDICTIONS)
        row.update(temperature=t, ece_scaled=ece(logits, labels, temperature=t))
    else:
        row.update(temperature=None, ece_scaled=None)
    return row


def _mean(values: Sequence[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def compare_runs(run_dirs: Sequence[str | Path]) -> dict[str, Any]:
    """Rows for every run and for every model group (architecture × framework × data set)."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    rows = [run_row(Path(d)) for d in run_dirs]
    datasets = {r["dataset"] for r in rows}
    frameworks = {r["framework"] for r in rows}
    for r in rows:
        r["model"] = r["arch"] + (f" ({r['framework']})" if len(frameworks) > 1 else "") + \
            (f" [{r['dataset']}]" if len(datasets) > 1 else "")
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    groups = []
    for model, members in by_model.items():
        acc = spread(r["accuracy"] for r in members)
        groups.append({
            "model": model, "arch": members[0]["arch"], "framework": members[0]["framework"],
            "dataset": members[0]["dataset"], "runs": len(members), "seeds": [r["seed"] for r in members],
            "accuracy_mean": acc["mean"], "accuracy_std": acc["std"],  # sample std; None for one run
            "params": members[0]["params"], "model_bytes": members[0]["model_bytes"],
            "train_seconds": _mean([r["train_seconds"] for r in members]),
            "samples_per_s": _mean([r["samples_per_s"] for r in members]),
            "ece": _mean([r["ece"] for r in members]), "ece_scaled": _mean([r["ece_scaled"] for r in members]),
            "per_class_accuracy": np.mean([r["per_class_accuracy"] for r in members], axis=0).tolist(),
        })
    return {"runs": rows, "groups": groups, "class_names": rows[0]["class_names"]}


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def accuracy_text(group: dict[str, Any]) -> str:
    return mean_std_text(group["accuracy_mean"], group["accuracy_std"])


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One formatted row per model, in :data:`COLUMNS` order."""
    return [[g["model"], str(g["runs"]), ",".join(map(str, g["seeds"])), accuracy_text(g), _fmt(g["params"], ","),
             _fmt(None if g["model_bytes"] is None else g["model_bytes"] / 1024, ",.0f"),
             _fmt(g["train_seconds"], ",.0f"), _fmt(g["samples_per_s"], ",.0f"), _fmt(g["ece"], ".4f"),
             _fmt(g["ece_scaled"], ".4f")] for g in result["groups"]]


def markdown(result: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "Accuracy is on the test split, mean ± sample std over the runs given; ECE uses 15 bins; "
              "the temperature is fitted on each run's validation split.", ""]
    return "\n".join(lines)


def write_comparison(result: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """Write ``comparison.{md,csv,json}`` and the comparison plots under ``out_dir``; return paths."""
    from mnistlab.analysis.plots_compare import plot_comparisons

    out_dir = Path(out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RUN_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["runs"])
    paths = {"markdown": out_dir / "comparison.md", "csv": out_dir / "comparison.csv",
             "json": out_dir / "comparison.json"}
    write_text(paths["markdown"], markdown(result))
    write_text(paths["csv"], buf.getvalue())
    write_json(paths["json"], result)
    figures = plot_comparisons(result, out_dir / "plots" / "model_comparisons")
    return {**{k: str(v) for k, v in paths.items()}, **{k: str(v) for k, v in figures.items()}}


def default_out(run_dirs: Sequence[str | Path]) -> Path:
    """``<common parent of the runs>/comparison``: beside the runs it compares."""
    return Path(os.path.commonpath([Path(d).resolve().parent for d in run_dirs])) / "comparison"
