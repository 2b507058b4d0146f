"""Ensembles of any runs, whatever their framework: average the members' class probabilities.

    >>> import numpy as np
    >>> a = np.array([[0.9, 0.1], [0.4, 0.6]]); b = np.array([[0.5, 0.5], [0.8, 0.2]])
    >>> average_probabilities([a, b]).round(3).tolist()
    [[0.7, 0.3], [0.6, 0.4]]
    >>> average_probabilities([a, b], weights=[3, 1])[1].round(3).tolist()
    [0.5, 0.5]

``ensemble_runs`` works on run directories from their saved logits (``predictions.npz`` for the
test split, ``val_predictions.npz`` for the weights: the test split never chooses anything) and
writes a run-like directory (``config.json`` with ``kind: ensemble``, ``predictions.npz``,
``val_predictions.npz``, ``metrics.json``) that ``report`` and ``compare`` can read like any run.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab import runs
from mnistlab.errors import UserError
from mnistlab.evaluation.metrics import accuracy, compute_metrics, softmax
from mnistlab.fileio import read_json, write_json


def average_probabilities(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean of ``[N, classes]`` probability arrays; weights are normalised to sum to 1."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stack),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {len(stack)} non-negative weights with a positive sum, got {list(w)}")
    return np.tensordot(w / w.sum(), stack, axes=1)


def ensemble_logits(logits: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Log of the averaged softmax probabilities: logits whose softmax is the ensemble's probabilities."""
    probs = average_probabilities([softmax(z) for z in logits], weights)
    return np.log(np.clip(probs, 1e-30, None)).astype(np.float32)


def _same_labels(labels: list[np.ndarray]) -> bool:
    return all(lab.shape == labels[0].shape and np.array_equal(lab, labels[0]) for lab in labels[1:])


def _model_bytes(run_dir: Path, config: dict[str, Any]) -> int | None:
    path = runs.weights_path(run_dir, config)
    return path.stat().st_size if path.is_file() else None


def ensemble_runs(run_dirs: Sequence[str | Path], *, weighted: bool = False, out: str | Path | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Average the members' test probabilities, save the ensemble as a run directory, return its summary.

    ``weighted`` weighs each member by its validation accuracy (from ``val_predictions.npz``).
    """
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise UserError("an ensemble needs at least two run directories")
    configs = [runs.read_config(d) for d in dirs]
    test = [runs.load_predictions(d / runs.PREDICTIONS) for d in dirs]
    if not _same_labels([lab for _, lab in test]):
        raise UserError("the runs were evaluated on different test sets (labels differ); ensemble runs of one data set")
    val_files = [d / runs.VAL_PREDICTIONS for d in dirs]
    val = [runs.load_predictions(p) for p in val_files] if all(p.is_file() for p in val_files) else None
    if val is not None and not _same_labels([lab for _, lab in val]):
        val = None
    if weighted and val is None:
        raise UserError("--weighted needs every run's val_predictions.npz on one validation split; "
                        "run 'mnistlab evaluate' on each, with the same --val-size and split seed")

    labels = test[0][1]
    val_accs = [accuracy(z, lab) for z, lab in val] if val is not None else [None] * len(dirs)
    weights = [float(a) for a in val_accs] if weighted else [1.0] * len(dirs)
    weights = [w / sum(weights) for w in weights]
    logits = ensemble_logits([z for z, _ in test], weights)

    out = runs.prepare_run_dir(out or runs.default_run_dir("ensemble"), force=force)
    members = [{"run_dir": str(d), "arch": c["arch"], "framework": c.get("framework", "torch"), "weight": w,
                "val_accuracy": va, "test_accuracy": accuracy(z, labels), "params": c.get("params"),
                "model_bytes": _model_bytes(d, c)}
               for d, c, w, va, (z, _) in zip(dirs, configs, weights, val_accs, test)]
    runs.write_config(out, {
        "kind": "ensemble", "framework": "ensemble", "dataset": configs[0]["dataset"], "arch": "ensemble",
        "model_args": {}, "params": sum(m["params"] or 0 for m in members), "data": configs[0]["data"],
        "weighting": "validation_accuracy" if weighted else "uniform", "members": members,
        "environment": runs.environment(),
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    })
    runs.save_predictions(out / runs.PREDICTIONS, logits, labels)
    val_acc = None
    if val is not None:
        val_logits = ensemble_logits([z for z, _ in val], weights)
        runs.save_predictions(out / runs.VAL_PREDICTIONS, val_logits, val[0][1])
        val_acc = accuracy(val_logits, val[0][1])

    metrics = compute_metrics(logits, labels, configs[0]["data"]["class_names"])
    trainings = [read_json(d / runs.TRAINING) if (d / runs.TRAINING).is_file() else {} for d in dirs]
    metrics.update({
        "arch": "ensemble", "framework": "ensemble", "dataset": configs[0]["dataset"], "seed": None,
        "params": sum(m["params"] or 0 for m in members),
        "model_bytes": sum(m["model_bytes"] or 0 for m in members),
        "train_seconds": sum(t.get("train_seconds") or 0 for t in trainings),
        "samples_per_s": None, "best_epoch": None, "epochs_run": None, "best_val_acc": val_acc,
        "weighting": "validation_accuracy" if weighted else "uniform", "members": members,
    })
    write_json(out / runs.METRICS, metrics)
    return {"run_dir": str(out), "accuracy": metrics["accuracy"], "val_accuracy": val_acc, "nll": metrics["nll"],
            "ece": metrics["ece"], "weighting": metrics["weighting"], "members": members}
