"""The one epoch loop: every trainer (PyTorch, Keras, pruning's fine-tune) runs its epochs here.

:func:`~mnistlab.training.fit.fit` calls it with the step its framework built::

    from mnistlab.training.loop import LoopOptions, run_epochs

    summary = run_epochs(step, cfg, data, LoopOptions(run_dir=out))

A framework hands in a *step* (see :class:`Step`): train one batch, give logits, report the
epoch's gradient norms, save and load its state. The loop owns the rest, the same for all:

* data: the uint8 tensors of :class:`~mnistlab.data.datasets.TrainValData`, resident on the
  device and normalised per batch (a float copy of the whole set is never made);
* order: one permutation per epoch from ``epoch_seed(seed, epoch)``, so a resumed run replays
  exactly; under torchrun each rank takes its share of every global batch, so 1 and N
  processes see the same global batches;
* selection and early stopping (:mod:`~mnistlab.training.selection`), decided on rank 0 and
  broadcast; metrics summed over ranks;
* files, rank 0 only: best weights, then the checkpoint (atomic), and only then ``history.csv``,
  so a run killed at any moment resumes to exactly one row per epoch; TensorBoard events. SIGINT
  and SIGTERM wait until these writes are done (:func:`mnistlab.stopping.deferred`). A resume
  first rewrites ``history.csv`` from the checkpoint, and one whose checkpoint says "done" (killed
  before the last row or ``training.json``) only writes what is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F

from mnistlab import runs
from mnistlab.config import TrainConfig, epoch_seed
from mnistlab.data.augment import Chain, RandomAffine, RandomErasing, RandomFlip, to_device
from mnistlab.data.datasets import TrainValData, normalize
from mnistlab.fileio import write_json
from mnistlab.stopping import deferred
from mnistlab.training import distributed
from mnistlab.training.checkpoint import save_checkpoint
from mnistlab.training.distributed import DistContext
from mnistlab.training.precision import Precision
from mnistlab.training.progress import EpochProgress
from mnistlab.training.selection import EpochSelector, epoch_row
from mnistlab.training.tensorboard import MISCLASSIFIED_SHOWN, EpochBoard

EVAL_CHUNK = 1024  # images per evaluation forward pass: bounded memory, full-speed convolutions


class TrainingFailed(RuntimeError):
    """The work itself failed (for example the loss became NaN); the CLI exits 1."""


class Step(Protocol):
    """What a framework plugs into the loop."""

    label: str   # shown in the progress line
    model: Any   # handed to ``on_epoch_end``
    precision: Precision  # what it trains in and why (--amp); training.json records it

    def begin_epoch(self, epoch: int, seed: int) -> float:
        """Enter training mode, seed dropout with ``seed``; return the learning rate at the epoch's start."""

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, Any]:
        """One optimiser step on a normalised batch; (summed loss, correct count) as numbers or 0-d tensors."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """After the epoch's last batch: epoch-level schedules; returns the mean gradient norm per layer."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode float logits of a normalised batch."""

    def state(self) -> dict[str, Any]:
        """Everything a resume needs, as tensors, numbers, strings, lists and dicts only."""

    def load_state(self, state: dict[str, Any]) -> None: ...

    def save_best(self, run_dir: Path) -> None:
        """Write the current weights as the run's model file."""


@dataclass
class LoopOptions:
    """Where and how the loop runs. ``run_dir=None`` writes nothing (pruning keeps its best in memory)."""

    run_dir: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    ctx: DistContext = field(default_factory=DistContext)
    progress: bool = True
    stream: int = 0  # added to the epoch in the generator formula: 1000 keeps fine-tuning off the run's draws
    on_epoch_end: Callable[[dict[str, float], Any], None] | None = None
    # Asked on rank 0 after each epoch's validation, before its files are written: a reason (e.g.
    # "pruned", from a hyper-parameter search) ends the run after this epoch as early stopping does,
    # recorded as training.json's stop_reason. Not asked after the last epoch: nothing is left to stop.
    stop_when: Callable[[dict[str, float]], str | None] | None = None


def make_augment(cfg: TrainConfig, data: TrainValData) -> RandomAffine | RandomFlip | Chain | None:
    """The run's random affine augmentation, then a left-right mirror (``cfg.hflip`` > 0), then random
    erasing (``cfg.erasing`` > 0).

    Uncovered borders and erased rectangles get the value of a black pixel. A transform that is
    off (an affine with no rotation, shift or zoom included) draws no random numbers, so older runs
    replay exactly.
    """
    if not cfg.augment:
        return None
    black = -data.info.mean / data.info.std
    affine = ((RandomAffine(cfg.degrees, cfg.translate, (1 - cfg.scale, 1 + cfg.scale), fill=black),)
              if (cfg.degrees, cfg.translate, cfg.scale) != (0, 0, 0) else ())
    transforms = affine + ((RandomFlip(cfg.hflip),) if cfg.hflip > 0 else ()) + (
        (RandomErasing(cfg.erasing, fill=black),) if cfg.erasing > 0 else ())
    if len(transforms) > 1:
        return Chain(transforms)
    return transforms[0] if transforms else None


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch: global batches, less a last one too small to share among ranks.

    >>> steps_per_epoch(10, 4), steps_per_epoch(9, 4, world_size=2)
    (3, 2)
    """
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= world_size else 0)


def global_batches(n: int, batch_size: int, gen: torch.Generator, ctx: DistContext) -> list[torch.Tensor]:
    """This rank's share (every ``world_size``-th index) of each global batch of one shuffled epoch.

    >>> g = torch.Generator().manual_seed(0)
    >>> [len(b) for b in global_batches(10, 4, g, DistContext(rank=1, world_size=2))]
    [2, 2, 1]
    """
    order = torch.randperm(n, generator=gen)
    batches = []
    for start in range(0, n, batch_size):
        chunk = order[start: start + batch_size]
        if len(chunk) < ctx.world_size:
            break  # some rank would get an empty batch; the last few images wait for the next epoch
        batches.append(chunk[ctx.rank:: ctx.world_size])
    return batches


def _train_epoch(step: Step, cfg: TrainConfig, data: TrainValData, tensors: dict[str, torch.Tensor], epoch: int,
                 opts: LoopOptions, bar: EpochProgress) -> tuple[Any, Any, int]:
    ctx = opts.ctx
    gen = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch + opts.stream))
    batches = global_batches(len(tensors["train_y"]), cfg.batch_size, gen, ctx)
    aug_gen = gen if ctx.rank == 0 else torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch + opts.stream, ctx.rank))
    augment = make_augment(cfg, data)
    bar.start_epoch(epoch, cfg.epochs, sum(len(b) for b in batches))
    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    for idx in batches:
        idx = to_device(idx, opts.device)  # on a GPU without waiting for the previous step
        xb = normalize(tensors["train_x"][idx], data.info.mean, data.info.std)
        if augment is not None:
            xb = augment(xb, aug_gen)
        batch_loss, batch_correct = step.train_batch(xb, tensors["train_y"][idx])
        loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(idx)
        if bar.live:  # reading the loss waits for the device: only when someone watches
            bar.advance(len(idx), float(loss_sum) / seen, float(correct) / seen, seen / (time.perf_counter() - t0))
    return loss_sum, correct, seen


def _evaluate(step: Step, data: TrainValData, tensors: dict[str, torch.Tensor]
              ) -> tuple[float, int, int, tuple[torch.Tensor, list[str]]]:
    """(summed loss, correct, count, (first misclassified images, captions)) on this rank's validation share."""
    x, y = tensors["val_x"], tensors["val_y"]
    loss_sum, correct, wrong = 0.0, 0, []
    for start in range(0, len(y), EVAL_CHUNK):
        yc = y[start: start + EVAL_CHUNK]
        logits = step.logits(normalize(x[start: start + EVAL_CHUNK], data.info.mean, data.info.std)).float()
        logits = logits.to(yc.device)
        pred = logits.argmax(1)
        loss_sum += F.cross_entropy(logits, yc, reduction="sum").item()
        correct += int((pred == yc).sum())
        if sum(len(w) for w, _ in wrong) < MISCLASSIFIED_SHOWN:
            miss = (pred != yc).nonzero().flatten()[:MISCLASSIFIED_SHOWN]
            wrong.append((start + miss, pred[miss]))
    idx = torch.cat([i for i, _ in wrong])[:MISCLASSIFIED_SHOWN] if wrong else torch.zeros(0, dtype=torch.long)
    preds = torch.cat([p for _, p in wrong])[:MISCLASSIFIED_SHOWN] if wrong else idx
    names = data.info.class_names
    captions = [f"{i}: true {names[int(y[i])]}, predicted {names[int(p)]}" for i, p in zip(idx.tolist(), preds.tolist())]
    return loss_sum, correct, len(y), (x[idx], captions)


def evaluate(step: Step, data: TrainValData) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``step``'s model on the whole validation split, in this process."""
    loss_sum, correct, n, _ = _evaluate(step, data, {"val_x": data.val_x, "val_y": data.val_y})
    return loss_sum / n, correct / n


def _device_tensors(data: TrainValData, opts: LoopOptions) -> dict[str, torch.Tensor]:
    """The data on the device: all training images (uint8), this rank's share of validation."""
    r, w, dev = opts.ctx.rank, opts.ctx.world_size, opts.device
    return {"train_x": data.train_x.to(dev), "train_y": data.train_y.to(dev),
            "val_x": data.val_x[r::w].to(dev), "val_y": data.val_y[r::w].to(dev)}


def run_epochs(step: Step, cfg: TrainConfig, data: TrainValData, opts: LoopOptions,
               resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg.epochs`` epochs (fewer on early stopping) from scratch or from a checkpoint; the summary."""
    ctx, run_dir = opts.ctx, opts.run_dir
    writes = ctx.is_main and run_dir is not None
    tensors = _device_tensors(data, opts)
    selector = EpochSelector(cfg.monitor, cfg.patience, cfg.epochs)
    history: list[dict[str, float]] = []
    start, elapsed, end = 1, 0.0, cfg.epochs
    if resume is not None:
        step.load_state(resume["step"])
        history, start, elapsed = resume["history"], resume["epoch"] + 1, resume["elapsed"]
        end = resume["epoch"] if resume.get("done") else end  # finished: complete its files, train nothing
        selector.load_state(resume)
        if writes:
            runs.write_history(run_dir, history)  # the checkpoint's rows, whatever the kill left
    board = EpochBoard(run_dir if writes and cfg.tensorboard else None, resume_epoch=start if resume else None)
    with EpochProgress(step.label, enabled=opts.progress and ctx.is_main) as bar:
        bar.log(f"precision: {step.precision.precision} ({step.precision.reason})")
        if resume is not None:
            bar.log(f"resuming {run_dir} at epoch {start}" if start <= end else
                    f"completing {run_dir}: its training had finished; writing history.csv and training.json")
        for epoch in range(start, end + 1):
            t0 = time.perf_counter()
            lr = step.begin_epoch(epoch, epoch_seed(cfg.seed, epoch + opts.stream, ctx.rank))
            loss_sum, correct, seen = _train_epoch(step, cfg, data, tensors, epoch, opts, bar)
            train_seconds = time.perf_counter() - t0
            grad_norms = step.end_epoch(epoch)
            val = _evaluate(step, data, tensors)
            totals = distributed.all_reduce_sum([loss_sum, correct, seen, *val[:3]], ctx, opts.device)
            if not all(map(torch.isfinite, torch.tensor(totals))):
                raise TrainingFailed(f"loss became {totals[0] / totals[2]} at epoch {epoch}; lower --lr")
            seconds = time.perf_counter() - t0
            elapsed += seconds
            row = epoch_row(epoch, totals[0], int(totals[1]), int(totals[2]), totals[3] / totals[5],
                            totals[4] / totals[5], lr, seconds, train_seconds)
            history.append(row)
            improved, done = selector.update(row), selector.done(epoch)
            if not done and ctx.is_main and opts.stop_when is not None:
                reason = opts.stop_when(row)
                if reason:
                    selector.stop_reason, done = reason, True
            improved, done = distributed.broadcast((improved, done), ctx)  # rank 0 decides for all
            if writes:
                with deferred():  # weights, checkpoint and history agree when a signal stops the run
                    if improved:
                        step.save_best(run_dir)
                    save_checkpoint(run_dir / runs.CHECKPOINT,
                                    {"epoch": epoch, "history": history, **selector.state(), "elapsed": elapsed,
                                     "done": done, "step": step.state()})
                    runs.write_history(run_dir, history)  # only now: the checkpoint for this row exists
                board.write_epoch(row, grad_norms, val[3])
            bar.end_epoch(row, " *" if improved else "")
            if opts.on_epoch_end is not None:
                opts.on_epoch_end(row, step.model)
            if done:
                break
    board.close()
    summary = {**selector.summary(history, elapsed, resumed=resume is not None), **step.precision.record()}
    if writes:
        write_json(run_dir / runs.TRAINING, summary)
    return summary
