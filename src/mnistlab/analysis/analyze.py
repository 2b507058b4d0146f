"""All analyses of one run, from its saved files: plots under ``plots/`` and ``analysis.json``.

For an evaluated run (nine figures, so a few seconds; ``mnistlab plots`` calls it)::

    from mnistlab.analysis.analyze import analyze_run

    summary = analyze_run("runs/simple")
    summary["calibration"]["ece_before"], summary["calibration"]["ece_after"]   # (0.0061, 0.0029)
    summary["notes"]      # ['MC dropout skipped: the simple model has no dropout layers']

Reads ``predictions.npz`` (test logits), ``val_predictions.npz`` (for the temperature),
``history.csv`` and ``training.json``; nothing is retrained and saved predictions are never
recomputed. Monte-Carlo dropout is the one computation that needs the model: it runs once for a
PyTorch model with dropout and is saved to ``mc_dropout.npz``; later calls read that file.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnistlab import runs
from mnistlab.analysis import plots, plots_confidence, plots_errors
from mnistlab.analysis.uncertainty import MC_PASSES, has_dropout, mc_dropout, score_aurocs, uncertainty_scores
from mnistlab.errors import UserError
from mnistlab.fileio import read_json, write_json, write_with
from mnistlab.maths.calibration import calibrate
from mnistlab.maths.metrics import confusion_matrix, per_class, softmax, top_confusions
from mnistlab.runconfig import RunConfig
from mnistlab.training.progress import WorkProgress

ANALYSIS = "analysis.json"
MC_FILE = "mc_dropout.npz"
PLOTS = "plots"
# Figure files, relative to the run directory; the report shows them in this order.
FIGURES = {
    "training_curves": "plots/training_curves/training_curves.png",
    "confusion_matrices": "plots/confusion_matrices/confusion_matrices.png",
    "per_class": "plots/confusion_matrices/per_class_metrics.png",
    "misclassified": "plots/misclassified_examples/most_confident_errors.png",
    "confused_pairs": "plots/misclassified_examples/confused_pairs.png",
    "confidence": "plots/calibration/confidence_histograms.png",
    "reliability": "plots/calibration/reliability_diagram.png",
    "uncertainty": "plots/calibration/uncertainty.png",
    "examples": "plots/data/examples.png",
}


def require_predictions(run_dir: Path) -> None:
    for name in (runs.PREDICTIONS, runs.VAL_PREDICTIONS):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir}: no {name}; run 'mnistlab evaluate {run_dir}' first")


def analyze_run(run_dir: str | Path, *, data_dir: str | None = None, mc_passes: int = MC_PASSES,
                mc_limit: int | None = None, log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Write every plot of one run and ``analysis.json``; return that summary.

    ``mc_limit`` runs Monte-Carlo dropout on the first ``mc_limit`` test images only (for quick
    checks); by default it covers the whole test split.
    """
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    require_predictions(run_dir)
    logits, labels = runs.load_predictions(run_dir / runs.PREDICTIONS)
    val_logits, val_labels = runs.load_predictions(run_dir / runs.VAL_PREDICTIONS)
    names = list(config.data.class_names)
    history = runs.read_history(run_dir)
    training = read_json(run_dir / runs.TRAINING) if (run_dir / runs.TRAINING).is_file() else {}
    out = {"run_dir": str(run_dir), "arch": config.arch, "framework": config.framework,
           "dataset": config.dataset, "notes": []}

    def path(key: str) -> Path:
        return run_dir / FIGURES[key]

    log(f"{run_dir}: curves, confusion, per-class")
    if history:
        out["curves"] = plots.plot_training_curves(history, training.get("best_epoch"), path("training_curves"))
    cm = confusion_matrix(logits, labels, len(names))
    plots.plot_confusion_matrices(cm, names, path("confusion_matrices"))
    plots.plot_per_class(per_class(logits, labels, names), path("per_class"))
    confusions = top_confusions(cm)
    out["top_confusions"] = [{**c, "true_name": names[c["true"]], "predicted_name": names[c["predicted"]]}
                             for c in confusions]
    plots_errors.plot_confused_pairs(confusions, names, path("confused_pairs"))

    images = _test_images(config, labels, data_dir, out["notes"])
    if images is not None:
        out["misclassified"] = plots_errors.plot_misclassified(images, labels, softmax(logits), names,
                                                               path("misclassified"))
        plots_errors.plot_examples(images, labels, names, path("examples"))

    log(f"{run_dir}: calibration and uncertainty")
    out["calibration"] = calibrate(val_logits, val_labels, logits, labels)
    t = out["calibration"]["temperature"]
    plots_confidence.plot_confidence(logits, labels, path("confidence"))
    plots_confidence.plot_reliability(logits, labels, t, path("reliability"))

    mc = mc_dropout_for_run(run_dir, config, images, mc_passes, mc_limit, out["notes"], log)
    scores = uncertainty_scores(logits, mc=mc)
    aurocs = score_aurocs(logits, labels, mc=mc)
    wrong = logits.argmax(1) != labels
    errors = {name: (mc["mean_probs"].argmax(1) != labels[mc["indices"]]) if name.startswith("mc_") else wrong
              for name in scores}
    plots_confidence.plot_uncertainty(scores, errors, aurocs, path("uncertainty"))
    out["uncertainty"] = {"aurocs": aurocs, "mc_dropout": None if mc is None else {
        "passes": int(mc["passes"]), "n": int(len(mc["indices"])),
        "accuracy": float((mc["mean_probs"].argmax(1) == labels[mc["indices"]]).mean())}}
    out["figures"] = {k: v for k, v in FIGURES.items() if (run_dir / v).is_file()}
    out["created"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    write_json(run_dir / ANALYSIS, out)
    return out


def _test_images(config: RunConfig, labels: np.ndarray, data_dir: str | None,
                 notes: list[str]) -> np.ndarray | None:
    """The uint8 test images the saved logits belong to, or None (with a note) if they differ."""
    from mnistlab.data.datasets import load_test_split

    # Pictures of the saved predictions' own images (errors, examples); nothing is chosen from them.
    x, y = load_test_split(config.dataset, data_dir, purpose="plots of the evaluated test images")
    if len(y) != len(labels) or not np.array_equal(y.numpy(), labels):
        notes.append("the saved test labels do not match the test split on disk; example images skipped")
        return None
    return x.numpy()


def mc_dropout_for_run(run_dir: Path, config: RunConfig, images: np.ndarray | None, passes: int,
                       limit: int | None, notes: list[str], log: Callable[[str], None]) -> dict[str, np.ndarray] | None:
    """Read ``mc_dropout.npz`` or compute and save it; None (with a note) where it does not apply."""
    from mnistlab import frameworks

    reason = ("an ensemble has no single model's dropout layers; analyse one of its members for it"
              if config.is_ensemble else frameworks.of_run(config, run_dir).why_not("mc_dropout"))
    if reason:
        notes.append(f"MC dropout skipped: {reason}")
        return None
    cached = load_mc(run_dir)
    n_wanted = None if images is None else min(limit or len(images), len(images))
    if cached is not None and int(cached["passes"]) == passes and (n_wanted is None or len(cached["indices"]) == n_wanted):
        return cached
    from mnistlab.frameworks.pytorch import load_model, normalize_images

    model, _ = load_model(run_dir)
    if not has_dropout(model):
        notes.append(f"MC dropout skipped: the {config.arch} model has no dropout layers")
        return None
    if images is None:
        notes.append("MC dropout skipped: the test images are not available")
        return None
    import torch

    indices = np.arange(n_wanted)
    log(f"{run_dir}: MC dropout, {passes} passes over {n_wanted:,} test images")
    x = normalize_images(torch.as_tensor(images[indices]), config.data)
    with WorkProgress(f"{run_dir.name}: MC dropout", total=passes, unit="passes") as work:
        probs = mc_dropout(model, x, passes=passes, seed=config.seed, on_pass=work.advance)
    result = {**probs, "indices": indices, "passes": np.array(passes)}

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **result)

    write_with(run_dir / MC_FILE, writer)
    return result


def load_mc(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = run_dir / MC_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def analysis_is_current(run_dir: str | Path) -> bool:
    """Whether ``analysis.json`` exists and is newer than the predictions it was made from."""
    run_dir = Path(run_dir)
    summary, preds = run_dir / ANALYSIS, run_dir / runs.PREDICTIONS
    return summary.is_file() and preds.is_file() and summary.stat().st_mtime >= preds.stat().st_mtime
