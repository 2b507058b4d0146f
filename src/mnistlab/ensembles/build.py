"""An ensemble of run directories, saved as a run directory: members and weights chosen on validation.

    >>> from mnistlab.ensembles import ensemble_runs
    >>> result = ensemble_runs(["runs/simple", "runs/simple-s1"], selection="caruana", out="runs/ens")
    >>> result["weighting"], [m["run_dir"] for m in result["members"]]
    ('caruana_val_nll', ['runs/simple', 'runs/simple-s1'])
    >>> sorted(result["gain"])      # over the member best on validation
    ['test_accuracy', 'val_accuracy']

Works from the members' saved logits (``val_predictions.npz`` for every choice, ``predictions.npz``
for the test report), so any framework mixes with any other. The order is the guarantee: the
validation predictions are read, temperatures and weights fixed (:mod:`.select`), and only then is
the test file of any member opened. The ensemble directory (``config.json`` with
``kind: ensemble``, ``predictions.npz``, ``val_predictions.npz``, ``metrics.json``) is read by
``report``, ``compare``, ``predict`` and ``serve`` like any run; members with weight 0 are listed
(for the report) but not loaded when it predicts.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab import runs
from mnistlab.ensembles.select import DEFAULT_ROUNDS, MAX_ROUNDS, METHODS, Selection, best_member, select_weights
from mnistlab.errors import UserError
from mnistlab.fileio import read_json, write_json
from mnistlab.maths.combine import ensemble_logits, member_probabilities
from mnistlab.maths.metrics import accuracy, compute_metrics, nll
from mnistlab.runcheck import MAX_MEMBERS
from mnistlab.runconfig import ENSEMBLE, Member, RunConfig

# config.json's "weighting" names (the first two predate --selection and stay readable).
WEIGHTING = {"all": "uniform", "accuracy": "validation_accuracy", "caruana": "caruana_val_nll",
             "fitted": "fitted_val_nll"}


def _same_labels(labels: list[np.ndarray]) -> bool:
    return all(lab.shape == labels[0].shape and np.array_equal(lab, labels[0]) for lab in labels[1:])


def _model_bytes(run_dir: Path, config: RunConfig) -> int | None:
    path = runs.weights_path(run_dir, config)
    return path.stat().st_size if path.is_file() else None


def selection_method(selection: str | None, weighted: bool, rounds: int) -> str:
    """The selection method the options name, or a one-line error for a bad one (checked before any work)."""
    if weighted and selection not in (None, "accuracy"):
        raise UserError(f"--weighted is --selection accuracy; give one of them, not --selection {selection}")
    method = selection or ("accuracy" if weighted else "all")
    if method not in METHODS:
        raise UserError(f"unknown --selection {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 <= rounds <= MAX_ROUNDS:
        raise UserError(f"--rounds {rounds}: give 0 to {MAX_ROUNDS} additions")
    return method


def _load_validation(dirs: list[Path], needed: str | None) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Every member's validation logits and the shared labels; None (or an error when ``needed``) without them."""
    files = [d / runs.VAL_PREDICTIONS for d in dirs]
    if not all(p.is_file() for p in files):
        if needed:
            raise UserError(f"{needed} needs every run's {runs.VAL_PREDICTIONS}; run 'mnistlab evaluate' on each")
        return None
    val = [runs.load_predictions(p) for p in files]
    if not _same_labels([lab for _, lab in val]):
        if needed:
            raise UserError(f"{needed} needs one validation split, and the runs' validation labels differ; "
                            "train them with the same --val-size and --split-seed")
        return None
    return [z for z, _ in val], val[0][1]


def require_temperature_fit() -> None:
    """``--temperature`` fits with scipy (the analysis extra): without it, one line with the install command."""
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        raise UserError("--temperature needs scipy; run: pip install 'mnistlab[analysis]'") from None


def _fit_temperatures(val: tuple[list[np.ndarray], np.ndarray] | None, on: bool, n: int) -> list[float]:
    if not on:
        return [1.0] * n
    require_temperature_fit()
    from mnistlab.maths.calibration import fit_temperature  # scipy: the analysis extra

    assert val is not None
    return [round(fit_temperature(z, val[1]), 6) for z in val[0]]


def ensemble_runs(run_dirs: Sequence[str | Path], *, weighted: bool = False, selection: str | None = None,
                  temperature: bool = False, rounds: int = DEFAULT_ROUNDS, out: str | Path | None = None,
                  force: bool = False, rebuild: bool = False) -> dict[str, Any]:
    """Combine the runs' probabilities, save the ensemble as a run directory, return its summary.

    ``selection`` is one of :data:`~mnistlab.ensembles.select.METHODS` (default ``all``, the plain
    average; ``weighted=True`` is ``accuracy``, kept for older callers). ``temperature`` first fits
    one temperature per member on validation. The summary holds each member (weight, validation and
    test accuracy), the ensemble's accuracies, the best member on validation and the gain over it.
    ``force`` and ``rebuild`` replace an existing ``out`` as :func:`mnistlab.runs.prepare_run_dir` does.
    """
    dirs = [Path(d) for d in run_dirs]
    if not 2 <= len(dirs) <= MAX_MEMBERS:
        raise UserError(f"an ensemble needs at least two run directories (at most {MAX_MEMBERS}), got {len(dirs)}")
    method = selection_method(selection, weighted, rounds)
    configs = [runs.read_config(d) for d in dirs]
    if len({c.dataset for c in configs}) > 1:
        raise UserError("the runs were trained on different data sets; ensemble runs of one data set")
    need = f"--selection {method}" if method != "all" else "--temperature" if temperature else None
    val = _load_validation(dirs, need)

    # Every decision, from validation alone. The test files are not opened before this point.
    temps = _fit_temperatures(val, temperature, len(dirs))
    chosen = Selection("all", [1.0 / len(dirs)] * len(dirs)) if val is None else \
        select_weights(method, member_probabilities(val[0], temps), val[1], rounds=rounds)
    weights = chosen.weights

    test = [runs.load_predictions(d / runs.PREDICTIONS) for d in dirs]
    if not _same_labels([lab for _, lab in test]):
        raise UserError("the runs were evaluated on different test sets (labels differ); ensemble runs of one data set")
    labels = test[0][1]
    members = []
    for i, (d, c, (z, _)) in enumerate(zip(dirs, configs, test)):
        vz = None if val is None else val[0][i] / temps[i]
        members.append(Member(
            run_dir=str(d), arch=c.arch, framework=c.framework, seed=c.seed, weight=weights[i],
            count=None if chosen.counts is None else chosen.counts[i], temperature=temps[i],
            val_accuracy=None if vz is None else accuracy(vz, val[1]),
            val_nll=None if vz is None else round(nll(vz, val[1]), 6),
            test_accuracy=accuracy(z, labels), params=c.params, model_bytes=_model_bytes(d, c)))
    logits = ensemble_logits([z for z, _ in test], weights, temps)
    val_logits = None if val is None else ensemble_logits(val[0], weights, temps)

    out = Path(out or runs.default_run_dir("ensemble"))
    with runs.writing(out):  # one writer: a second ensemble into the same folder is refused
        runs.prepare_run_dir(out, force=force, rebuild=rebuild)
        used = [m for m in members if m.used]
        params = sum(m.params or 0 for m in used)
        settings = {"method": method, "metric": chosen.metric, "rounds": rounds if method == "caruana" else None,
                    "temperature": "per_member_val_nll" if temperature else None,
                    "members_used": len(used), "members_offered": len(members)}
        runs.write_config(out, RunConfig(
            kind=ENSEMBLE, framework=ENSEMBLE, dataset=configs[0].dataset, arch=ENSEMBLE, params=params,
            data=configs[0].data, weighting=WEIGHTING[method], selection=settings, members=tuple(members),
            environment=runs.environment(), created=_dt.datetime.now().astimezone().isoformat(timespec="seconds")))
        rows = [m.to_dict() for m in members]
        runs.save_predictions(out / runs.PREDICTIONS, logits, labels)
        summary = _summary(rows, logits, labels, val_logits, val)
        if val_logits is not None:
            runs.save_predictions(out / runs.VAL_PREDICTIONS, val_logits, val[1])

        metrics = compute_metrics(logits, labels, list(configs[0].data.class_names))
        trainings = [read_json(d / runs.TRAINING) if (d / runs.TRAINING).is_file() else {} for d in dirs]
        metrics.update({
            "arch": ENSEMBLE, "framework": ENSEMBLE, "dataset": configs[0].dataset, "seed": None,
            "params": params, "model_bytes": sum(m.model_bytes or 0 for m in used),
            # what the whole library cost to train, every member offered, chosen or not
            "train_seconds": sum(t.get("train_seconds") or 0 for t in trainings),
            "samples_per_s": None, "best_epoch": None, "epochs_run": None, "best_val_acc": summary["val_accuracy"],
            "weighting": WEIGHTING[method], "selection": {**settings, "trace": chosen.trace}, "members": rows,
            "best_member": summary["best_member"], "gain": summary["gain"],
        })
        write_json(out / runs.METRICS, metrics)
    return {"run_dir": str(out), "accuracy": metrics["accuracy"], "nll": metrics["nll"], "ece": metrics["ece"],
            "weighting": WEIGHTING[method], "selection": settings, "train_seconds": metrics["train_seconds"],
            **summary, "members": rows}


def _summary(members: list[dict[str, Any]], logits: np.ndarray, labels: np.ndarray,
             val_logits: np.ndarray | None, val: tuple[list[np.ndarray], np.ndarray] | None) -> dict[str, Any]:
    """The ensemble's validation scores, the best member on validation, and the gain over that member."""
    if val is None or val_logits is None:
        return {"val_accuracy": None, "val_nll": None, "best_member": None, "gain": None}
    val_acc, val_nll = accuracy(val_logits, val[1]), round(nll(val_logits, val[1]), 6)
    best = best_member([m["val_accuracy"] for m in members], [m["val_nll"] for m in members])
    top = members[best]
    return {"val_accuracy": val_acc, "val_nll": val_nll,
            "best_member": {"index": best, "run_dir": top["run_dir"], "val_accuracy": top["val_accuracy"],
                            "test_accuracy": top["test_accuracy"]},
            "gain": {"val_accuracy": round(val_acc - top["val_accuracy"], 6),
                     "test_accuracy": round(accuracy(logits, labels) - top["test_accuracy"], 6)}}
