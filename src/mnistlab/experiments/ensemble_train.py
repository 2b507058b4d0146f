"""Train an ensemble's members (architecture × seed), then build the ensemble from them.

    >>> from mnistlab.experiments.ensemble_train import member_name, parse_members
    >>> parse_members("deeper, keras:simple")
    [('torch', 'deeper'), ('keras', 'simple')]
    >>> member_name("keras", "simple", 3)
    'keras-simple-s3'

Training ten members for 12 epochs each takes a while::

    from mnistlab.config import TrainConfig
    from mnistlab.experiments.ensemble_train import ensemble_train

    ensemble_train(parse_members("deeper,resnet"), [0, 1, 2, 3, 4],
                   TrainConfig(epochs=12, patience=0), "runs/ens")

Each member trains through the framework's normal ``train`` into ``<out>/<arch>-s<seed>`` (Keras
members into ``<out>/keras-<arch>-s<seed>``), with every member sharing one validation split. The
call can be repeated: a finished member is reused (evaluated if it was not yet), an interrupted one
resumes from its checkpoint, one killed before its first epoch ended starts again; a member trained
with other settings is an error unless ``force`` retrains everything. The ensemble is rebuilt into
``<out>/ensemble`` each time, from validation predictions only (:mod:`mnistlab.ensembles.build`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab import frameworks, runs
from mnistlab.config import TrainConfig
from mnistlab.ensembles.build import ensemble_runs, require_temperature_fit, selection_method
from mnistlab.ensembles.select import DEFAULT_ROUNDS
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.fileio import read_json
from mnistlab.maths.spread import spread
from mnistlab.models import list_models
from mnistlab.runcheck import MAX_MEMBERS
from mnistlab.runconfig import RunConfig
from mnistlab.training.progress import stderr_log

# Settings that change how fast a member trains or what it logs, not what it learns.
NOT_COMPARED = ("threads", "device", "tensorboard")
EVALUATED = (runs.METRICS, runs.PREDICTIONS, runs.VAL_PREDICTIONS)


def parse_members(text: str) -> list[tuple[str, str]]:
    """``"deeper,keras:simple"`` → ``[("torch", "deeper"), ("keras", "simple")]``; each name once."""
    members = []
    for name in filter(None, (p.strip() for p in text.split(","))):
        framework, _, arch = name.rpartition(":")
        framework = framework or frameworks.FRAMEWORKS[0]
        if framework not in frameworks.FRAMEWORKS or arch not in list_models():
            raise UserError(f"--archs: unknown model {name[:40]!r}; use names from 'mnistlab models', "
                            "with 'keras:' in front for a Keras twin")
        members.append((framework, arch))
    if not members or len(set(members)) != len(members):
        raise UserError(f"--archs {text[:60]!r}: give at least one architecture, each once")
    return members


def member_name(framework: str, arch: str, seed: int) -> str:
    return f"{frameworks.TABLE[framework].run_prefix}{arch}-s{seed}"


def _check_same(run_dir: Path, stored: RunConfig, cfg: TrainConfig) -> None:
    """The run in ``run_dir`` was trained with ``cfg`` (up to :data:`NOT_COMPARED`), or a one-line error."""
    if stored.kind != "train" or stored.framework != cfg.framework or stored.train is None:
        raise UserError(f"{run_dir}: not a {cfg.framework} training run; pass --force to replace it or choose another --out")
    old, new = stored.train.to_dict(), cfg.to_dict()
    for key in new:
        if key not in NOT_COMPARED and old.get(key) != new[key]:
            raise UserError(f"{run_dir}: trained with {key}={old.get(key)!r}, not {new[key]!r}; "
                            "pass --force to train every member again, or choose another --out")


def member_state(run_dir: Path, cfg: TrainConfig) -> str:
    """``new``, ``restart`` (created, no epoch finished), ``resume`` (interrupted) or ``done``."""
    if not runs.leftovers(run_dir):  # nothing, or only what a writer killed before its config.json left
        return "new"
    if not (run_dir / runs.CONFIG).is_file():
        raise UserError(f"{run_dir}: exists and is not a run directory; move it away or choose another --out")
    _check_same(run_dir, runs.read_config(run_dir), cfg)
    if (run_dir / runs.TRAINING).is_file():
        return "done"
    # No checkpoint: no epoch had finished. A checkpoint of a finished run without training.json: the
    # resume writes what is missing.
    return "resume" if (run_dir / runs.CHECKPOINT).is_file() else "restart"


def _spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture: the member accuracies' :func:`~mnistlab.maths.spread.spread` over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["framework"], r["arch"]), []).append(r)
    return [{"framework": framework, "arch": arch, "seeds": [r["seed"] for r in group],
             **{key: spread(r[key] for r in group) for key in ("test_accuracy", "val_accuracy")}}
            for (framework, arch), group in groups.items()]


def ensemble_train(members: Sequence[tuple[str, str]], seeds: Sequence[int], base: TrainConfig, out: str | Path, *,
                   selection: str = "caruana", temperature: bool = False, rounds: int = DEFAULT_ROUNDS,
                   force: bool = False, data_dir: str | None = None, progress: bool = True,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or reuse) every ``(framework, arch)`` × seed member under ``out``, evaluate, ensemble."""
    log = log or (stderr_log if progress else (lambda _m: None))
    plan = [(fw, arch, seed) for fw, arch in members for seed in seeds]
    if not 2 <= len(plan) <= MAX_MEMBERS:
        raise UserError(f"an ensemble needs 2 to {MAX_MEMBERS} members; --archs × --seeds gives {len(plan)}")
    selection_method(selection, False, rounds)  # a bad --rounds fails now, not after hours of training
    if temperature:
        require_temperature_fit()  # so does a missing scipy
    for framework in {fw for fw, _, _ in plan}:
        frameworks.get(framework)
    out, t0, data = Path(out), time.perf_counter(), None
    rows = []
    for i, (framework, arch, seed) in enumerate(plan, 1):
        cfg = dataclasses.replace(base, arch=arch, framework=framework, seed=seed)
        run_dir = out / member_name(framework, arch, seed)
        state = "new" if force else member_state(run_dir, cfg)
        log(f"member {i}/{len(plan)} {run_dir.name}: "
            + {"new": "training", "restart": "training again (no epoch had finished)",
               "resume": "resuming", "done": "reusing the finished run"}[state])
        train = frameworks.get(framework).train
        if state in ("new", "restart"):
            if data is None:  # one load for every member: they share the split and the subset
                from mnistlab.data.datasets import load_train_val

                data = load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed,
                                      data_dir=data_dir, train_subset=cfg.train_subset)
            if state == "restart":  # nothing learnt there: replaced without a warning about a --force not given
                runs.prepare_run_dir(run_dir, rebuild=True)
            train(cfg, run_dir, data_dir=data_dir, force=force, progress=progress, data=data)
        elif state == "resume":
            train(None, run_dir, data_dir=data_dir, resume=True, progress=progress)
        if state != "done" or not all((run_dir / f).is_file() for f in EVALUATED):
            evaluate_run(run_dir, data_dir=data_dir)
        metrics = read_json(run_dir / runs.METRICS)
        rows.append({"run_dir": str(run_dir), "framework": framework, "arch": arch, "seed": seed,
                     "state": "reused" if state == "done" else "resumed" if state == "resume" else "trained",
                     "test_accuracy": metrics["accuracy"],
                     "train_seconds": metrics.get("train_seconds") or 0.0})
    ensemble = ensemble_runs([r["run_dir"] for r in rows], selection=selection, temperature=temperature,
                             rounds=rounds, out=out / "ensemble", rebuild=True)  # from the members, every call
    for row, member in zip(rows, ensemble["members"]):  # the same images the selection saw
        row.update(val_accuracy=member["val_accuracy"], weight=member["weight"])
    return {"out": str(out), "ensemble": ensemble, "members": rows, "spread": _spread(rows),
            "train_seconds": round(sum(r["train_seconds"] for r in rows), 1),
            "wall_seconds": round(time.perf_counter() - t0, 1)}
