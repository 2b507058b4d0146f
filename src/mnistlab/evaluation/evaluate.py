"""Run the test split once, save logits, write ``metrics.json``.

    >>> from mnistlab.evaluation.evaluate import evaluate_run
    >>> metrics = evaluate_run("runs/simple")        # a trained run (quick: 0.99 needs a real training)
    >>> metrics["n_samples"], metrics["accuracy"]     # doctest: +ELLIPSIS
    (10000, 0...)
    >>> from pathlib import Path
    >>> sorted(p.name for p in Path("runs/simple").glob("*.npz"))      # logits saved for later
    ['predictions.npz', 'val_predictions.npz']

With ``tta="shifts"`` (or ``"flip"``, on a data set whose classes survive a mirror) both splits are
predicted with test-time augmentation (:mod:`mnistlab.evaluation.tta`); with ``tta="auto"`` the view
set with the best validation accuracy is used only if it beats the plain prediction, decided before
the test split is read.

This is where a run meets the test split (``load_test_split``; the few other readers say why).
Validation logits are saved beside the test logits so that later decisions (temperature,
ensemble weights) can be made without the test set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnistlab import runs
from mnistlab.data import registry
from mnistlab.data.datasets import load_test_split, load_train_val
from mnistlab.errors import UserError
from mnistlab.evaluation.tta import check_mode, note, scorer, validation_choice
from mnistlab.fileio import read_json, write_json
from mnistlab.frameworks.inference import predictor
from mnistlab.maths.metrics import compute_metrics
from mnistlab.runconfig import RunConfig
from mnistlab.training.progress import WorkProgress


@runs.writes_run
def evaluate_run(run_dir: str | Path, *, data_dir: str | None = None, tta: str = "off",
                 tta_candidates: tuple[str, ...] | None = None,
                 log: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Compute and save test (and validation) logits and the test metrics of one run.

    ``tta`` is ``off`` (default), ``shifts``, ``flip`` or ``auto`` (see the module docstring;
    ``tta_candidates`` narrows what ``auto`` tries); any other value, or ``flip`` on digits, is a
    :class:`UserError`. With TTA asked for, ``metrics["tta"]`` records the choice and ``log`` gets
    one line saying it.
    """
    check_mode(tta)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    info = registry.get(config.dataset)
    check_mode(tta, info.mirrors, info.subject)
    with WorkProgress(f"evaluate {run_dir.name}" + (f" (TTA {tta})" if tta != "off" else "")) as work:
        return _evaluate(run_dir, config, work.counting(predictor(run_dir)), data_dir=data_dir, tta=tta,
                         tta_candidates=tta_candidates, log=log, started=started)


def _evaluate(run_dir: Path, config: RunConfig, predict: Callable[[np.ndarray], Any], *, data_dir: str | None,
              tta: str, tta_candidates: tuple[str, ...] | None, log: Callable[[str], None],
              started: float) -> dict[str, Any]:
    """:func:`evaluate_run` once the run is loaded: ``predict`` counts what it does on the progress display."""
    dataset = config.dataset
    info = registry.get(dataset)
    data = config.data
    val = load_train_val(dataset, val_size=data.val_size, seed=data.split_seed, data_dir=data_dir)
    val_logits, choice = validation_choice(tta, predict, val.val_x.numpy(), val.val_y.numpy(), mirrors=info.mirrors,
                                           candidates=tta_candidates)
    runs.save_predictions(run_dir / runs.VAL_PREDICTIONS, val_logits, val.val_y.numpy())
    score = scorer(choice, predict)

    # The one scoring of a finished run: the test split is read here, once, and nothing chosen from it.
    test_x, test_y = load_test_split(dataset, data_dir, purpose="final evaluation of a finished run")
    t0 = time.perf_counter()
    logits = score(test_x.numpy())
    seconds = time.perf_counter() - t0
    labels = test_y.numpy()
    runs.save_predictions(run_dir / runs.PREDICTIONS, logits, labels)

    metrics = compute_metrics(logits, labels, data.class_names)
    metrics.update(run_summary(run_dir, config))
    metrics["inference_seconds"] = round(seconds, 3)
    if tta != "off":  # an evaluation without TTA writes the same metrics.json as before TTA existed
        metrics["tta"] = {**choice, "evaluate_seconds": round(time.perf_counter() - started, 3)}
        log(note(choice, metrics["tta"]["evaluate_seconds"]))
    write_json(run_dir / runs.METRICS, metrics)
    return metrics


def run_summary(run_dir: Path, config: RunConfig) -> dict[str, Any]:
    """Facts about the run that sit beside its metrics: size, params, training time."""
    weights = runs.weights_path(run_dir, config)
    training = read_json(run_dir / runs.TRAINING) if (run_dir / runs.TRAINING).is_file() else {}
    return {
        "arch": config.arch,
        "framework": config.framework,
        "dataset": config.dataset,
        "seed": config.seed,
        "params": config.params,
        "model_bytes": weights.stat().st_size if weights.is_file() else None,
        "train_seconds": training.get("train_seconds"),
        "samples_per_s": training.get("samples_per_s"),
        "precision": training.get("precision"),  # bf16, fp16 or float32 (--amp); None before it was recorded
        "best_epoch": training.get("best_epoch"),
        "epochs_run": training.get("epochs_run"),
        "best_val_acc": training.get("best_val_acc"),
    }


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / runs.METRICS
    if not path.is_file():
        raise UserError(f"{run_dir}: no {runs.METRICS}; run 'mnistlab evaluate {run_dir}' first")
    return read_json(path)
