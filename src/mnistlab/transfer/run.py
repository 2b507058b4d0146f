"""One transfer run: a source run's body, a new classifier, trained on another data set.

    >>> from mnistlab.transfer.run import transfer_run, default_budget
    >>> default_budget(1000)        # (epochs, batch size) for 1,000 labelled images
    (24, 62)

A transfer run trains (here 24 epochs at batch size 62, for each recipe tried), so it takes a while::

    summary = transfer_run("runs/simple-mnist", "fashion-mnist", "finetune", train_subset=1000,
                           out="runs/fashion-finetune")

Modes (:data:`mnistlab.config.TRANSFER_MODES`): ``finetune`` starts every layer from the source
and trains them all with a fresh classifier; ``features`` freezes the body and trains the
classifier alone (a linear probe; the classifier is part of the saved model); ``scratch`` trains
the same architecture from a random start with the same budget: the baseline.

``finetune`` chooses its recipe on validation unless one is given: each candidate
(``all``, ``lower-body``, ``head-first``) trains with the full budget into ``<out>/trials/<recipe>``
(each an ordinary run directory), and the one with the best validation accuracy is copied to
``<out>``, whose ``config.json`` records every trial. Never the test split.

``resume=True`` continues a stopped transfer with the same options: finished trials (and a
finished run) are reused, a stopped one resumes from its checkpoint (or from epoch 1, from the
source's weights, if no epoch had finished), the rest train. Without it, a folder holding a
stopped transfer is refused in one line naming ``--resume`` and ``--force``. SIGINT and SIGTERM
stop it with :class:`~mnistlab.errors.Interrupted` naming the command that resumes.

Every run goes through :func:`mnistlab.training.fit.fit` (the one epoch loop); the new run's
config records ``transfer_from`` (source run, its weights' SHA-256, its data set) and
``train.transfer`` (mode, recipe), so ``--resume``, ``evaluate``, ``plots``, ``report`` and
``export`` treat it like any other run.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import shutil
import signal
from pathlib import Path
from typing import Any

from mnistlab import runs
from mnistlab.config import TRANSFER_MODES, TrainConfig, capped_val_size, learnt_difference
from mnistlab.data.datasets import TrainValData, load_train_val
from mnistlab.errors import Interrupted, UserError
from mnistlab.fileio import read_json, write_with
from mnistlab.frameworks.registry import TABLE
from mnistlab.runconfig import RecipeTrial, RunConfig
from mnistlab.stopping import stop_on_signals
from mnistlab.training.fit import fit
from mnistlab.training.trainer import build_torch
from mnistlab.transfer.source import Source, open_source

TORCH = TABLE["torch"]  # this module is a piece of PyTorch's entry (frameworks.torch_entry), which loads it

# The default budget: about TARGET_STEPS optimiser steps, batches of n/16 (16..128 images), between
# MIN_EPOCHS and MAX_EPOCHS epochs. 100 labels → 40 epochs of 16; 1,000 → 24 of 62;
# 10,000 → 6 of 128; 55,000 → 3 of 128. A few hundred steps is where a 1,000-label run stops improving on
# validation; fixed beforehand and the same for the three modes.
TARGET_STEPS, MIN_EPOCHS, MAX_EPOCHS = 400, 3, 40
TRIALS = "trials"
# What a finished trial leaves that the chosen run's folder takes over (config.json is rewritten last).
RUN_FILES = (runs.WEIGHTS, runs.CHECKPOINT, runs.HISTORY, runs.TRAINING, "grad_norms.csv")


def default_budget(n_train: int) -> tuple[int, int]:
    """(epochs, batch size) for ``n_train`` labelled images (see :data:`TARGET_STEPS`)."""
    batch = min(128, max(16, n_train // 16))
    steps = math.ceil(n_train / batch)
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps))), batch


def transfer_config(source: Source, to: str, mode: str, recipe: str, *, n_train: int, epochs: int | None = None,
                    batch_size: int | None = None, seed: int = 0, train_subset: int | None = None,
                    **overrides: Any) -> TrainConfig:
    """The settings of a transfer run; the default budget fills ``epochs`` and ``batch_size``."""
    default_epochs, default_batch = default_budget(n_train)
    overrides.setdefault("val_size", capped_val_size(to, TrainConfig.val_size))
    return TrainConfig(arch=source.config.arch, model_args=dict(source.config.model_args),
                       dataset=to, epochs=epochs or default_epochs, batch_size=batch_size or default_batch,
                       seed=seed, train_subset=train_subset, patience=0, framework=TORCH.name,
                       transfer={"mode": mode, "recipe": recipe}, **overrides)


def _train_one(cfg: TrainConfig, source: Source, out: Path, data: TrainValData, *, data_dir: str | None,
               force: bool, progress: bool, resume: bool = False) -> dict[str, Any]:
    """Train ``cfg`` into ``out`` through the shared loop, starting from the source's body unless scratch.

    With ``resume``: a finished run's summary as it is; a started one continued (or started again,
    from the source, when no epoch had finished); an empty ``out`` trained.
    """
    scratch = cfg.transfer["mode"] == "scratch"
    record = source.record("random" if scratch else "body")

    def build(*args: Any) -> tuple[Any, RunConfig]:
        step, config = build_torch(*args, init=None if scratch else source.state)
        return step, dataclasses.replace(config, transfer_from=record)

    started = resume and (out / runs.CONFIG).is_file()
    if started:
        _check_same(out, cfg, source)
        if (out / runs.TRAINING).is_file():
            return read_json(out / runs.TRAINING)
    return fit(None if started else cfg, out, build=build, framework=TORCH.name, data_dir=data_dir, resume=started,
               force=force, progress=progress, data=data)


def _check_same(run_dir: Path, cfg: TrainConfig | None, source: Source) -> None:
    """The run in ``run_dir`` is ``cfg`` from ``source``'s current weights (up to :data:`~mnistlab.config.NOT_LEARNT`), or one line."""
    stored = runs.read_config(run_dir)
    fix = "give the options it was started with, or pass --force to start again"
    if stored.train is None or cfg is None or stored.transfer_from is None:
        raise UserError(f"{run_dir}: not a transfer run of these options; {fix}")
    difference = learnt_difference(stored.train.to_dict(), cfg)
    if difference is not None:
        key, old, value = difference
        raise UserError(f"{run_dir}: started with {key}={old!r}, not {value!r}; {fix}")
    if stored.transfer_from.sha256 != source.sha256:
        raise UserError(f"{run_dir}: started from other weights of {source.run_dir} (SHA-256 differs); "
                        "pass --force to start again from the current ones")


def _copy_run(src: Path, dst: Path) -> None:
    for name in RUN_FILES:
        if (src / name).is_file():
            write_with(dst / name, lambda tmp, name=name: shutil.copyfile(src / name, tmp))


def _stopped(out: Path) -> bool:
    """Whether ``out`` holds a recipe choice stopped before its config.json: trials, maybe some copied files."""
    names = {p.name for p in runs.leftovers(out)}
    return TRIALS in names and names <= {TRIALS, *RUN_FILES} and not (out / runs.CONFIG).exists()


def _prepare(out: Path, *, force: bool, resume: bool) -> None:
    """Make ``out`` ready, holding its lock: a new folder, a stopped transfer to resume, or one cleared by ``force``."""
    if resume:
        return  # what is there is checked trial by trial, reused or continued
    if _stopped(out):
        if not force:
            raise UserError(f"{out}: holds a stopped transfer; pass --resume to continue it (finished trials are "
                            "reused) or --force to start again")
        runs.clear(out)
        return
    runs.prepare_run_dir(out, force=force)


def _resume_command(source_dir: str | Path, to: str, mode: str, out: Path, *, recipe: str, train_subset: int | None,
                   epochs: int | None, seed: int) -> str:
    """The ``mnistlab transfer`` command that continues this transfer (its options, ``--out``, ``--resume``)."""
    options = {"--recipe": None if recipe == "auto" else recipe, "--train-subset": train_subset, "--epochs": epochs,
               "--seed": seed or None, "--out": out}
    words = ["transfer", str(source_dir), "--to", to, "--mode", mode]
    words += [w for flag, value in options.items() if value is not None for w in (flag, str(value))]
    return "mnistlab " + shlex.join([*words, "--resume"])


def transfer_run(source_dir: str | Path, to: str, mode: str, *, recipe: str = "auto", train_subset: int | None = None,
                 epochs: int | None = None, batch_size: int | None = None, seed: int = 0,
                 out: str | Path | None = None, data_dir: str | None = None, force: bool = False,
                 resume: bool = False, progress: bool = True, data: TrainValData | None = None,
                 **overrides: Any) -> dict[str, Any]:
    """Train a ``mode`` transfer run from ``source_dir`` on ``to``; returns the training summary (+ run_dir, recipe).

    ``recipe="auto"`` picks ``finetune``'s recipe on validation (other modes have one recipe);
    ``resume`` continues a stopped transfer at ``out`` (see the module's docstring); ``data``
    reuses tensors already loaded (the curve does); ``overrides`` are further
    :class:`~mnistlab.config.TrainConfig` fields (``lr``, ``augment``, ...).
    """
    if mode not in TRANSFER_MODES:
        raise UserError(f"--mode {mode!r}: choose one of {', '.join(TRANSFER_MODES)}")
    candidates = TRANSFER_MODES[mode] if recipe == "auto" else (recipe,)
    if recipe != "auto" and recipe not in TRANSFER_MODES[mode]:
        raise UserError(f"--recipe {recipe!r}: mode {mode} takes {' or '.join(('auto',) + TRANSFER_MODES[mode])}")
    if resume and (force or out is None):
        raise UserError("--resume continues the transfer at --out: give its --out, without --force")
    source = open_source(source_dir, to)
    out = Path(out) if out else runs.default_run_dir(f"{source.config.arch}-{to}-{mode}")
    again = _resume_command(source_dir, to, mode, out, recipe=recipe, train_subset=train_subset, epochs=epochs,
                           seed=seed)
    try:
        with stop_on_signals(), runs.writing(out):
            _prepare(out, force=force, resume=resume)
            if data is None:
                overrides.setdefault("val_size", capped_val_size(to, TrainConfig.val_size))
                data = load_train_val(to, val_size=overrides["val_size"], data_dir=data_dir,
                                      train_subset=train_subset)
            cfgs = [transfer_config(source, to, mode, r, n_train=len(data.train_y), epochs=epochs,
                                    batch_size=batch_size, seed=seed, train_subset=train_subset, **overrides)
                    for r in candidates]
            if len(cfgs) == 1:
                summary = _train_one(cfgs[0], source, out, data, data_dir=data_dir, force=force, progress=progress,
                                     resume=resume)
                return {"run_dir": str(out), "mode": mode, "recipe": candidates[0], **summary}
            return _choose_recipe(cfgs, source, out, data, data_dir=data_dir, progress=progress, resume=resume)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or a trial's Interrupted: the transfer's own command resumes
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), again) from None


def _choose_recipe(cfgs: list[TrainConfig], source: Source, out: Path, data: TrainValData, *,
                   data_dir: str | None, progress: bool, resume: bool) -> dict[str, Any]:
    """Train every recipe into ``out/trials/<recipe>`` (or reuse finished ones), copy the best to ``out``."""
    if resume and (out / runs.CONFIG).is_file():  # finished before: ``out`` must be this transfer's
        recipe = (runs.read_config(out).train.transfer or {}).get("recipe")
        _check_same(out, next((c for c in cfgs if c.transfer["recipe"] == recipe), None), source)
    trials = {cfg.transfer["recipe"]: _train_one(cfg, source, out / TRIALS / cfg.transfer["recipe"], data,
                                                 data_dir=data_dir, force=True, progress=progress, resume=resume)
              for cfg in cfgs}
    # Validation accuracy decides; lower validation loss breaks a tie, then the order of the candidates.
    best = min(trials, key=lambda r: (-trials[r]["best_val_acc"], trials[r]["best_val_loss"]))
    _copy_run(out / TRIALS / best, out)
    config = runs.read_config(out / TRIALS / best)
    keys = ("best_val_acc", "best_val_loss", "best_epoch")
    record = [{"recipe": r, **{k: s[k] for k in keys}} for r, s in trials.items()]
    chosen = dataclasses.replace(config.transfer_from, recipe_choice="validation",
                                 recipe_trials=tuple(RecipeTrial(**r) for r in record))
    runs.write_config(out, dataclasses.replace(config, transfer_from=chosen))  # last: the run is whole
    return {"run_dir": str(out), "mode": cfgs[0].transfer["mode"], "recipe": best, **trials[best], "trials": record,
            "trials_train_seconds": round(sum(s["train_seconds"] for s in trials.values()), 2)}
