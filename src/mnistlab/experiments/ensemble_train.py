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
members into ``<out>/keras-<arch>-s<seed>``), with every member sharing one validation split, and is
evaluated once trained. The members are a fixed grid run by :mod:`mnistlab.sweep.repeats` (with
``options=RepeatOptions(workers=K)``, K processes at once; ``storage`` shares them between
machines). The call can be repeated: a finished member is reused (evaluated if it was not yet),
an interrupted one resumes from its checkpoint, one killed before its first epoch ended starts
again; a member trained with other settings is an error unless ``force`` retrains everything. The ensemble is rebuilt into
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
from mnistlab.fileio import read_json
from mnistlab.maths.spread import spread
from mnistlab.models import list_models
from mnistlab.runcheck import MAX_MEMBERS
from mnistlab.sweep.members import TrainMember, member_state
from mnistlab.sweep.repeats import RepeatOptions, run_members
from mnistlab.training.progress import stderr_log

__all__ = ["ensemble_train", "member_name", "member_state", "parse_members"]

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
                   log: Callable[[str], None] | None = None, options: RepeatOptions | None = None,
                   resume_command: str | None = None) -> dict[str, Any]:
    """Train (or reuse) every ``(framework, arch)`` × seed member under ``out``, evaluate, ensemble.

    The members run through :func:`~mnistlab.sweep.repeats.run_members` (``options``: workers, a
    shared study), each evaluated once trained.
    """
    log = log or (stderr_log if progress else (lambda _m: None))
    plan = [(fw, arch, seed) for fw, arch in members for seed in seeds]
    if not 2 <= len(plan) <= MAX_MEMBERS:
        raise UserError(f"an ensemble needs 2 to {MAX_MEMBERS} members; --archs × --seeds gives {len(plan)}")
    selection_method(selection, False, rounds)  # a bad --rounds fails now, not after hours of training
    if temperature:
        require_temperature_fit()  # so does a missing scipy
    for framework in {fw for fw, _, _ in plan}:
        frameworks.get(framework)
    out, t0 = Path(out), time.perf_counter()
    runs_ = [TrainMember(member_name(fw, arch, seed), dataclasses.replace(base, arch=arch, framework=fw, seed=seed),
                         evaluate=True) for fw, arch, seed in plan]
    states = run_members(runs_, out, options or RepeatOptions(), what="ensemble", data_dir=data_dir, force=force, progress=progress,
                         log=log, resume_command=resume_command)
    rows = []
    for member in runs_:
        run_dir, state = out / member.name, states[member.name]
        metrics = read_json(run_dir / runs.METRICS)
        rows.append({"run_dir": str(run_dir), "framework": member.cfg.framework, "arch": member.cfg.arch,
                     "seed": member.cfg.seed,
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
