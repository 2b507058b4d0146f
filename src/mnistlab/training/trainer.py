"""The PyTorch training loop: schedules, early stopping, best checkpoint, atomic saves, resume.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.training.trainer import train          # doctest: +SKIP
    >>> result = train(TrainConfig(arch="simple", epochs=1), "runs/demo")  # doctest: +SKIP
    >>> result["best_val_acc"]                                # doctest: +SKIP
    0.98...

The whole training set lives in memory as one normalised float tensor (55,000 × 784 floats is
172 MB) and batches are index gathers: on a CPU a DataLoader with workers would only add copies.
Each epoch draws its shuffle and augmentation from a generator seeded by (seed, epoch), so a
resumed run sees exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.data.augment import RandomAffine
from mnistlab.data.datasets import TrainValData, load_train_val
from mnistlab.errors import UserError
from mnistlab.training.gradflow import GradNormMonitor
from mnistlab.fileio import write_json, write_with
from mnistlab.frameworks.pytorch import normalize_images, torch_logits
from mnistlab.models import count_parameters
from mnistlab.training.progress import EpochProgress
from mnistlab.training.selection import EpochSelector, epoch_row


class TrainingFailed(RuntimeError):
    """The work itself failed (for example the loss became NaN); the CLI exits 1."""


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns (scheduler or None, whether it steps per batch)."""
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25)
        return sched, True
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    return None, False


def evaluate_split(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on a normalised split."""
    logits = torch_logits(model, x, channels_last=channels_last)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def run_config(cfg: TrainConfig, data: TrainValData, model: torch.nn.Module, threads: int) -> dict[str, Any]:
    """The config.json of a new run."""
    info = data.info
    return {
        "kind": "train",
        "framework": "torch",
        "dataset": info.name,
        "arch": cfg.arch,
        "model_args": cfg.model_args,
        "params": count_parameters(model),
        "data": {
            "mean": info.mean, "std": info.std, "class_names": list(info.class_names),
            "num_classes": info.num_classes, "image_size": info.image_size, "in_channels": 1,
            "val_size": cfg.val_size, "split_seed": cfg.split_seed,
            "n_train": len(data.train_y), "n_val": len(data.val_y),
        },
        "train": cfg.to_dict(),
        "threads": threads,
        "environment": runs.environment(),
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def train(cfg: TrainConfig, out: str | Path, *, data_dir: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, data: TrainValData | None = None,
          on_epoch_end: Callable[[dict[str, float], torch.nn.Module], None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out`` and return the training summary.

    ``resume=True`` continues the run in ``out`` from its last completed epoch, with the
    settings stored there. ``data`` may be passed to reuse tensors already in memory.
    ``on_epoch_end(row, model)`` is called after each epoch's checkpoint (benchmarks use it).
    """
    out = Path(out)
    state = None
    if resume:
        stored = runs.read_config(out)
        cfg = TrainConfig.from_dict(stored["train"])
        ckpt = out / runs.CHECKPOINT
        if not ckpt.is_file():
            raise UserError(f"{out}: nothing to resume (no {runs.CHECKPOINT}); train it again with --force")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["done"]:
            raise UserError(f"{out}: this run already finished; train a new one or use --force")
    else:
        runs.prepare_run_dir(out, force=force)

    threads = cfg.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    if data is None:
        data = load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed,
                              data_dir=data_dir, train_subset=cfg.train_subset)
    norm = {"mean": data.info.mean, "std": data.info.std}
    train_x, val_x = normalize_images(data.train_x, norm), normalize_images(data.val_x, norm)
    train_y, val_y = data.train_y, data.val_y

    from mnistlab.models import create_model

    model = create_model(cfg.arch, in_channels=1, num_classes=data.info.num_classes,
                         image_size=data.info.image_size, **cfg.model_args)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    grad_monitor = GradNormMonitor(model, out)  # per-layer gradient norms → grad_norms.csv
    steps_per_epoch = math.ceil(len(train_y) / cfg.batch_size)
    opt = make_optimizer(model, cfg)
    amp_device = next(model.parameters()).device.type
    amp_dtype = torch.float16 if amp_device == "cuda" else torch.bfloat16  # CPUs have no fast fp16
    scaler = torch.amp.GradScaler(amp_device, enabled=cfg.amp and amp_dtype == torch.float16)  # bf16 needs none
    sched, per_batch = make_scheduler(opt, cfg, steps_per_epoch)
    augment = RandomAffine(cfg.degrees, cfg.translate, (1 - cfg.scale, 1 + cfg.scale),
                           fill=-data.info.mean / data.info.std) if cfg.augment else None

    history: list[dict[str, float]] = []
    selector = EpochSelector(cfg.monitor, cfg.patience, cfg.epochs)
    start_epoch, elapsed = 1, 0.0
    if state is None:
        runs.write_config(out, run_config(cfg, data, model, threads))
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        history = state["history"]
        selector.load_state(state)
        start_epoch, elapsed = state["epoch"] + 1, state["elapsed"]

    with EpochProgress(cfg.arch, enabled=progress) as bar:
        if state is not None:
            bar.log(f"resuming {out} at epoch {start_epoch}")
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            gen = epoch_generator(cfg.seed, epoch)
            torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout masks, reproducible on resume
            lr = opt.param_groups[0]["lr"]
            model.train()
            order = torch.randperm(len(train_y), generator=gen)
            bar.start_epoch(epoch, cfg.epochs, len(order))
            loss_sum, correct, seen = 0.0, 0, 0
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start: start + cfg.batch_size]
                xb, yb = train_x[idx], train_y[idx]
                if augment is not None:
                    xb = augment(xb, gen)
                if cfg.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(amp_device, dtype=amp_dtype, enabled=cfg.amp):
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                if not torch.isfinite(loss):
                    raise TrainingFailed(f"loss became {loss.item()} at epoch {epoch}; lower --lr")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)  # no-op unless fp16; the monitor sees true gradients
                grad_monitor.step()
                scaler.step(opt)
                scaler.update()
                if per_batch:
                    sched.step()
                loss_sum += loss.item() * len(yb)
                correct += (logits.argmax(1) == yb).sum().item()
                seen += len(yb)
                bar.advance(len(yb), loss_sum / seen, correct / seen, seen / (time.perf_counter() - t0))
            train_seconds = time.perf_counter() - t0
            if sched is not None and not per_batch:
                sched.step()
            val_loss, val_acc = evaluate_split(model, val_x, val_y, cfg.channels_last)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            row = epoch_row(epoch, loss_sum, correct, seen, val_loss, val_acc, lr, seconds, train_seconds)
            history.append(row)
            grad_monitor.end_epoch(epoch)  # warns on stderr when a layer's gradients vanish or explode
            improved = selector.update(row)
            if improved:
                runs.save_weights(out, model)
            done = selector.done(epoch)
            runs.write_history(out, history)
            ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "epoch": epoch, "history": history, **selector.state(),
                    "elapsed": elapsed, "done": done}
            write_with(out / runs.CHECKPOINT, lambda tmp: torch.save(ckpt, tmp))
            bar.end_epoch(row, " *" if improved else "")
            if on_epoch_end is not None:
                on_epoch_end(row, model)
            if done:
                break

    summary = selector.summary(history, elapsed, resumed=resume)
    write_json(out / runs.TRAINING, summary)
    return summary
