"""Opening a run for the epoch loop: new or resumed, one process or many; shared by every framework.

A framework's trainer is one call (PyTorch's, in :mod:`mnistlab.training.trainer`)::

    from mnistlab.training.fit import fit

    fit(cfg, out, build=build_torch, framework="torch", data_dir=data_dir, resume=resume, force=force)

:func:`fit` reads (on resume) or creates (new run) the run directory on rank 0 only, holding its
lock, picks the device and this process's threads, loads the data, asks the framework's ``build``
for its step and its config.json, and runs :func:`~mnistlab.training.loop.run_epochs`. The
framework trainers (``training.trainer.train``, ``frameworks.keras.train.train``) are thin calls
to it. ``--resume`` continues from any moment: from the last checkpoint, from epoch 1 with the
stored config when no epoch had finished, or only completing the files of a run that had finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import shlex
import signal
from pathlib import Path
from typing import Any, Callable

import torch

from mnistlab import runs
from mnistlab.config import ONECYCLE_PCT_START, TrainConfig
from mnistlab.data.datasets import TrainValData, load_train_val
from mnistlab.errors import Interrupted, UserError
from mnistlab.fileio import check_writable
from mnistlab.runconfig import DataFacts, RunConfig
from mnistlab.stopping import stop_on_signals
from mnistlab.training import distributed
from mnistlab.training.checkpoint import load_checkpoint
from mnistlab.training.device import device_type, keep_freed_memory
from mnistlab.training.distributed import DistContext
from mnistlab.training.loop import LoopOptions, Step, run_epochs, steps_per_epoch

# build(cfg, data, device, ctx, run_dir or None, threads) → (step, the run's config without world_size/backend)
Build = Callable[[TrainConfig, TrainValData, torch.device, DistContext, "Path | None", int], "tuple[Step, RunConfig]"]


def run_config(cfg: TrainConfig, data: TrainValData, params: int, threads: int, *, framework: str,
               model_file: str) -> RunConfig:
    """The config of a new run (a framework may add to it, e.g. Keras its versions)."""
    info = data.info
    facts = DataFacts(mean=info.mean, std=info.std, class_names=tuple(info.class_names), num_classes=info.num_classes,
                      image_size=info.image_size, in_channels=info.in_channels, val_size=cfg.val_size,
                      split_seed=cfg.split_seed, n_train=len(data.train_y), n_val=len(data.val_y),
                      fingerprint=info.fingerprint)
    return RunConfig(kind="train", framework=framework, dataset=info.name, arch=cfg.arch, model_args=cfg.model_args,
                     params=params, data=facts, train=cfg, threads=threads, model_file=model_file,
                     environment=runs.environment(),
                     created=_dt.datetime.now().astimezone().isoformat(timespec="seconds"))


def check_schedule(cfg: TrainConfig, steps: int) -> None:
    """OneCycle's warm-up must not end exactly at step 0: PyTorch's OneCycleLR (and its Keras mirror) divide by zero."""
    total = cfg.epochs * steps
    if cfg.scheduler == "onecycle" and ONECYCLE_PCT_START * total - 1 == 0:
        raise UserError(f"--scheduler onecycle cannot run exactly {total} optimiser steps (epochs × batches): "
                        "change --epochs, --train-subset or --batch-size, or use --scheduler none")


def _open_resume(out: Path, framework: str) -> tuple[TrainConfig, dict[str, Any] | None]:
    """(stored settings, checkpoint) of a run to continue; rank 0 only, holding the run's lock.

    The checkpoint is None when the run was stopped before its first epoch ended: it starts again
    from epoch 1 with its stored settings. A finished run's checkpoint comes back too when
    ``history.csv`` or ``training.json`` was not completed: the loop completes them.
    """
    stored = runs.read_config(out)
    if stored.framework != framework or stored.train is None:
        raise UserError(f"{out}: a {stored.framework} {stored.kind} run; resume it with its own framework")
    if not (out / runs.CHECKPOINT).is_file():
        return stored.train, None
    state = load_checkpoint(out / runs.CHECKPOINT)
    if state.get("done") and (out / runs.TRAINING).is_file():  # training.json is the last file written
        raise UserError(f"{out}: this run already finished; train a new one or use --force")
    return stored.train, state


def _restart(out: Path, stored: RunConfig, built: RunConfig) -> None:
    """Clear a run stopped before its first epoch ended, after checking that it starts from the same weights."""
    old, new = stored.transfer_from, built.transfer_from
    if old is not None and (new is None or (old.sha256, old.initialised) != (new.sha256, new.initialised)):
        raise UserError(f"{out}: a transfer run from {old.run} that had not finished an epoch; start it again "
                        "with 'mnistlab transfer' and --resume (the source's weights must be unchanged)")
    runs.clear(out, keep=(runs.CONFIG,))  # what the first attempt began: epoch 1 writes it again


def _resume_hint(out: Path) -> str | None:
    """The command that continues the run at ``out``; None before its config exists (nothing to resume)."""
    return f"mnistlab train --resume {shlex.quote(str(out))}" if (out / runs.CONFIG).is_file() else None


def check_before_launch(cfg: TrainConfig | None, out: Path, *, resume: bool = False, force: bool = False) -> TrainConfig:
    """What rank 0 would check (and create), done once before ``--nproc`` starts torchrun; the settings.

    A mistake then ends in one line (exit 2) rather than in every process and torchrun's report.
    Whether the framework trains on several processes is its registry entry's to say (the caller asks).
    The run's lock is held while checking and released before torchrun starts: rank 0 takes it then.
    """
    with runs.writing(out):
        if resume:
            cfg = _open_resume(out, runs.read_config(out).framework)[0]
        assert cfg is not None, "a new run needs a TrainConfig"
        device_type(cfg.device)
        if not resume:
            runs.prepare_run_dir(out, force=force)  # rank 0 finds it ready (and empty)
    return cfg


def fit(cfg: TrainConfig | None, out: str | Path, *, build: Build, framework: str, data_dir: str | None = None,
        resume: bool = False, force: bool = False, progress: bool = True, data: TrainValData | None = None,
        on_epoch_end: Callable[[dict[str, float], Any], None] | None = None,
        stop_when: Callable[[dict[str, float]], str | None] | None = None,
        config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``out`` (or continue ``out`` with ``resume``) with the step ``build`` makes.

    ``config_extra`` sets fields of a new run's :class:`~mnistlab.runconfig.RunConfig` (quickstart
    records its budget plan this way, a sweep its trial). ``stop_when(row)`` may end the run after
    an epoch with a reason (:class:`~mnistlab.training.loop.LoopOptions`). Rank 0 holds the run's lock (:func:`mnistlab.runs.writing`)
    throughout; SIGINT and SIGTERM raise :class:`~mnistlab.errors.Interrupted` naming the command
    that resumes.
    """
    ctx, out = distributed.join(), Path(out)
    try:
        out = distributed.broadcast(out, ctx)  # default names hold a time stamp: rank 0's wins
        with stop_on_signals(), contextlib.ExitStack() as held:
            return _fit(cfg, out, ctx, held, build=build, framework=framework, data_dir=data_dir, resume=resume,
                        force=force, progress=progress, data=data, on_epoch_end=on_epoch_end,
                        stop_when=stop_when, config_extra=config_extra)
    except KeyboardInterrupt as exc:
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), _resume_hint(out)) from None
    finally:
        distributed.stop(ctx)


def _fit(cfg: TrainConfig | None, out: Path, ctx: DistContext, held: contextlib.ExitStack, *, build: Build,
         framework: str, data_dir: str | None, resume: bool, force: bool, progress: bool, data: TrainValData | None,
         on_epoch_end: Callable[[dict[str, float], Any], None] | None,
         stop_when: Callable[[dict[str, float]], str | None] | None,
         config_extra: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`fit` inside its lock (``held``, rank 0's) and signal handlers."""
    def lock() -> None:
        held.enter_context(runs.writing(out))

    state = None
    if resume:  # locked before the checkpoint is read: nobody changes it until the run ends
        cfg, state = distributed.from_main(lambda: (lock(), _open_resume(out, framework))[1], ctx)
    else:  # a read-only --out fails here, before the data is loaded
        distributed.from_main(lambda: check_writable(out), ctx)
    assert cfg is not None, "a new run needs a TrainConfig"
    # Device, data and schedule checked before --out is touched: a mistake there changes nothing.
    ctx, device = distributed.on_device(ctx, cfg.device)
    threads = cfg.threads or distributed.threads_per_process(ctx)
    torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()  # activations stay mapped between steps: no page faults per batch
    torch.manual_seed(cfg.seed)
    if data is None:
        data = load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed,
                              data_dir=data_dir, train_subset=cfg.train_subset)
    check_schedule(cfg, steps_per_epoch(len(data.train_y), cfg.batch_size, ctx.world_size))
    if not resume:
        distributed.from_main(lambda: (lock(), runs.prepare_run_dir(out, force=force)), ctx)
    step, config = build(cfg, data, device, ctx, out if ctx.is_main else None, threads)
    if resume and state is None:  # no epoch had finished: epoch 1 again, from the same starting weights
        distributed.from_main(lambda: _restart(out, runs.read_config(out), config), ctx)
    elif ctx.is_main and state is None:
        runs.write_config(out, dataclasses.replace(config, **(config_extra or {}), device=str(device),
                                                   world_size=ctx.world_size, backend=ctx.backend))
    opts = LoopOptions(run_dir=out, device=device, ctx=ctx, progress=progress, on_epoch_end=on_epoch_end,
                       stop_when=stop_when)
    return run_epochs(step, cfg, data, opts, resume=state)
