"""The main job: verify the data, train the three architectures (and the Keras twin of `simple`),
evaluate, compare, report, all within a wall-time budget.

A smoke run (a few tiny trainings, as ``mnistlab quickstart --smoke``; the real one takes ``budget_min``)::

    from mnistlab.experiments.quickstart import quickstart

    result = quickstart("runs/quickstart-demo", smoke=True)

The budget (``budget_min``, 15 minutes by default) is wall time, not epochs: after loading the
data, each model is timed on a few steps (:mod:`mnistlab.training.throughput`) and
:func:`mnistlab.experiments.budget.plan_epochs` chooses its epochs (at most :data:`EPOCHS`, the counts that
reached the accuracy targets on a 2-core CPU) so that the whole job, evaluation and report
included, ends within the budget. The plan is printed on stderr at the start, recorded in each
run's config.json (``budget``) and compared with the time taken at the end.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

from mnistlab import frameworks, runs
from mnistlab.analysis.uncertainty import MC_PASSES
from mnistlab.config import TrainConfig, capped_val_size, preset
from mnistlab.data import registry, store
from mnistlab.data.datasets import TrainValData, load_train_val
from mnistlab.ensembles import ensemble_runs
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.evaluation.tta import VIEW_SETS
from mnistlab.experiments.budget import PLOT_S, ModelCost, Plan, check_budget, epoch_seconds, plan_epochs
from mnistlab.frameworks import FRAMEWORKS
from mnistlab.models import list_models
from mnistlab.training.progress import stderr_log

# "framework:arch"; the Keras twin of `simple` runs when the keras extra is installed, so the
# job also compares the two frameworks and their ensemble (the seed's averaged probabilities).
MODELS = ("simple", "deeper", "resnet", "keras:simple")
EPOCHS = {"simple": 8, "deeper": 12, "resnet": 12}  # the most each gets; the budget may cut them
BUDGET_MIN = 15.0
SMOKE = dict(epochs=1, train_subset=2000, val_size=1000)
# Monte-Carlo dropout in the report runs 20 passes per image; over all 10,000 test images that
# costs about a minute on 2 cores for `deeper`, so the report estimates it on a fixed slice.
MC_LIMIT, SMOKE_MC_LIMIT = 2000, 500
TEST_IMAGES = 10_000  # both registered data sets


def default_models(dataset: str) -> tuple[str, ...]:
    """The models the main job trains on ``dataset`` unless told otherwise (its registry entry, else :data:`MODELS`).

    >>> default_models("mnist"), default_models("fashion-mnist")
    (('simple', 'deeper', 'resnet', 'keras:simple'), ('simple', 'resnet', 'keras:simple'))
    """
    return registry.get(dataset).quickstart_models or MODELS


def max_epochs(dataset: str, name: str, arch: str) -> int:
    """The most epochs model ``name`` gets on ``dataset`` (its registry entry, else :data:`EPOCHS`).

    >>> max_epochs("mnist", "simple", "simple"), max_epochs("fashion-mnist", "keras:simple", "simple")
    (8, 4)
    """
    own = dict(registry.get(dataset).quickstart_epochs)
    return own.get(name, EPOCHS.get(arch, 10))


def quickstart(out: str | Path, *, smoke: bool = False, budget_min: float = BUDGET_MIN, dataset: str = "mnist",
               data_dir: str | None = None, seed: int = 0, force: bool = False, progress: bool = True,
               models: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Verify the data, train and evaluate ``models`` into ``out/<name>``, write ``out/report.html``.

    ``models`` defaults to :func:`default_models` of ``dataset``.

    Returns ``{"out", "smoke", "dataset", "total_seconds", "budget", "models": [one comparison row
    per model], "report"}``; when a PyTorch and a Keras ``simple`` were trained, one more row is
    their ensemble. ``budget`` is the plan (None with ``smoke``, whose budget is fixed and tiny).
    """
    from mnistlab.report.html import build_report

    t0 = time.perf_counter()
    out = Path(out)
    budget_s = None if smoke else check_budget(budget_min)
    registry.get(dataset)  # an unknown name: one line, before any work
    parsed = [_parse_model(m) for m in (models or default_models(dataset))]  # every name checked before any work
    _check_free([out / name.replace(":", "-") for name, _, _ in parsed], force)
    store.fetch(dataset, data_dir=data_dir)
    log = stderr_log if progress else (lambda _msg: None)
    configs: dict[str, TrainConfig] = {}
    for name, framework, arch in parsed:
        try:
            frameworks.get(framework)
        except UserError as exc:  # an optional framework's extra is missing: the others still run
            log(f"skipping {name}: {exc}")
            continue
        overrides = ({**SMOKE, "val_size": capped_val_size(dataset, SMOKE["val_size"])} if smoke
                     else {"epochs": max_epochs(dataset, name, arch)})
        configs[name] = preset("default", arch=arch, framework=framework, dataset=dataset, seed=seed, patience=0,
                               **overrides)
    first = next(iter(configs.values()), TrainConfig(dataset=dataset, **SMOKE))
    if smoke and (room := len(load_train_val(dataset, val_size=first.val_size, data_dir=data_dir).train_y)) \
            <= SMOKE["train_subset"]:  # a small added data set: the smoke budget takes all of it
        configs = {name: dataclasses.replace(cfg, train_subset=room) for name, cfg in configs.items()}
        first = dataclasses.replace(first, train_subset=room)
    data = load_train_val(dataset, val_size=first.val_size, seed=first.split_seed, data_dir=data_dir,
                          train_subset=first.train_subset)
    plan = None
    if budget_s is not None:
        plan = plan_budget(configs, data, budget_s, time.perf_counter() - t0, log)
        configs = {name: dataclasses.replace(cfg, epochs=plan.epochs[name]) for name, cfg in configs.items()}
    rows = []
    for name, cfg in configs.items():
        run_dir = out / name.replace(":", "-")
        summary = frameworks.get(cfg.framework).train(cfg, run_dir, data_dir=data_dir, force=force, progress=progress,
                                                data=data, config_extra={"budget": plan.record()} if plan else None)
        metrics = evaluate_run(run_dir, data_dir=data_dir, **tta_settings(dataset, smoke), log=log)
        rows.append({
            "arch": cfg.arch, "framework": cfg.framework, "run_dir": str(run_dir), "test_accuracy": metrics["accuracy"],
            "val_accuracy": summary["best_val_acc"], "params": metrics["params"],
            "train_seconds": summary["train_seconds"], "epochs": summary["epochs_run"],
            "samples_per_s": summary["samples_per_s"], "model_bytes": metrics["model_bytes"],
            "ece": metrics["ece"], "tta": _tta_used(metrics),
        })
    report = build_report([r["run_dir"] for r in rows], out / "report.html", data_dir=data_dir,
                          mc_limit=SMOKE_MC_LIMIT if smoke else MC_LIMIT, log=log)
    rows.extend(_framework_ensemble(rows, out, force))
    total = round(time.perf_counter() - t0, 1)
    if plan is not None:
        log(f"budget {budget_min:g} min: planned {plan.planned_s:.0f} s, took {total:.0f} s"
            + ("" if total <= plan.budget_s else " (over budget: the machine was slower than measured)"))
    return {"out": str(out), "smoke": smoke, "dataset": dataset, "total_seconds": total,
            "budget": {**plan.record(), "actual_s": total} if plan else None, "models": rows, "report": str(report)}


def tta_settings(dataset: str, smoke: bool = False) -> dict[str, Any]:
    """How the main job evaluates on ``dataset``: ``--tta auto`` over the registry's ``quickstart_tta``
    view sets (chosen on validation, model by model), or no TTA where it names none or in a smoke run.

    >>> tta_settings("mnist"), tta_settings("fashion-mnist")
    ({'tta': 'off'}, {'tta': 'auto', 'tta_candidates': ('flip',)})
    """
    sets = () if smoke else registry.get(dataset).quickstart_tta
    return {"tta": "auto", "tta_candidates": sets} if sets else {"tta": "off"}


def evaluation_images(dataset: str, n_val: int) -> int:
    """Images one evaluation predicts: validation and test once each, plus every TTA view tried.

    >>> evaluation_images("mnist", 5000), evaluation_images("fashion-mnist", 5000)
    (15000, 35000)
    """
    views = [len(VIEW_SETS[name]) for name in registry.get(dataset).quickstart_tta]
    return n_val * (1 + sum(views)) + TEST_IMAGES * max(views, default=1)


def plan_budget(configs: dict[str, TrainConfig], data: TrainValData, budget_s: float, spent_s: float,
                log: Callable[[str], None]) -> Plan:
    """Time each model on a few steps, then choose epochs that fit ``budget_s``; log the plan (one line)."""
    from mnistlab.training.throughput import measure

    log(f"budget {budget_s / 60:g} min: timing each model on a few steps to choose its epochs")
    t0, costs = time.perf_counter(), []
    n_train, n_val = len(data.train_y), len(data.val_y)
    for name, cfg in configs.items():
        framework = frameworks.get(cfg.framework)
        speed = measure(cfg, data, build=framework.build, cpu_only=not framework.can("cuda"))
        # After training: evaluation (validation + test), MC dropout for the report (PyTorch), figures.
        mc = MC_LIMIT * MC_PASSES if framework.can("mc_dropout") else 0
        after = evaluation_images(cfg.dataset, n_val) + mc
        costs.append(ModelCost(name, cfg.epochs, epoch_seconds(n_train, n_val, speed.train_per_s, speed.eval_per_s),
                               fixed_s=speed.startup_s + after / speed.eval_per_s + PLOT_S))
        log(f"measured {name}: {speed.train_per_s:,.0f} training and {speed.eval_per_s:,.0f} evaluation images/s "
            f"({speed.steps} steps, {speed.precision}): {costs[-1].epoch_s:.0f} s per epoch")
    plan = plan_epochs(costs, budget_s, spent_s + time.perf_counter() - t0)
    log(plan.line())
    if not plan.fits:
        log(f"warning: even one epoch of every model does not fit in {budget_s / 60:g} min on this machine; "
            "training one epoch each anyway (raise --budget or pass fewer --models)")
    return plan


def _check_free(run_dirs: list[Path], force: bool) -> None:
    """Refuse at once (not after minutes of work) when a run is already at one of ``run_dirs``."""
    for run_dir in run_dirs:
        if not force and run_dir.is_dir() and any(run_dir.iterdir()):
            raise UserError(f"{run_dir}: a run already exists there; pass --force to overwrite or choose another --out")


def _parse_model(name: str) -> tuple[str, str, str]:
    """``"keras:simple"`` → (name, "keras", "simple"); a bare name is a model of the default framework (PyTorch)."""
    framework, _, arch = name.strip().rpartition(":")
    framework = framework or FRAMEWORKS[0]
    if framework not in FRAMEWORKS or arch not in list_models():
        raise UserError(f"unknown quickstart model {name!r}; use names from 'mnistlab models', "
                        "with 'keras:' in front for the Keras twin")
    return name.strip(), framework, arch


def _framework_ensemble(rows: list[dict[str, Any]], out: Path, force: bool) -> list[dict[str, Any]]:
    """The PyTorch + Keras `simple` ensemble's row, from saved logits (seconds), when both exist."""
    pair = [r for r in rows if r["arch"] == "simple"]
    if sorted(r["framework"] for r in pair) != sorted(FRAMEWORKS):  # one `simple` per framework
        return []
    result = ensemble_runs([r["run_dir"] for r in pair], out=out / "ensemble-simple", force=force)
    return [{"arch": "simple", "framework": "+".join(FRAMEWORKS), "run_dir": result["run_dir"],
             "test_accuracy": result["accuracy"], "val_accuracy": result["val_accuracy"],
             "params": sum(r["params"] for r in pair), "train_seconds": sum(r["train_seconds"] for r in pair),
             "epochs": None, "samples_per_s": None, "model_bytes": sum(r["model_bytes"] for r in pair),
             "ece": result["ece"], "tta": None}]


def _tta_used(metrics: dict[str, Any]) -> str | None:
    """The TTA view set an evaluation scored test with, or None."""
    tta = metrics.get("tta", {})
    return tta["view_set"] if tta.get("used") else None


def default_out() -> Path:
    return runs.default_run_dir("quickstart")
