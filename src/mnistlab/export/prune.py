"""Global magnitude pruning with short fine-tuning, and the sparsity-vs-accuracy curve.

Each sparsity fine-tunes for an epoch and is evaluated on the test split, so this takes a while::

    from mnistlab.export.prune import prune_run

    table = prune_run("runs/simple", [0.5, 0.9], finetune_epochs=1)
    [round(r["sparsity_reached"], 2) for r in table]      # [0.0, 0.5, 0.9]: the unpruned run first

For each sparsity, starting from the run's weights: ``torch.nn.utils.prune.global_unstructured``
with L1 magnitude over every conv and linear weight (so layers lose different fractions — the
big dense layers give up the most), then ``finetune_epochs`` epochs with the mask held fixed,
keeping the epoch with the best validation accuracy (epoch 0 = no fine-tuning), then
``prune.remove`` makes the zeros permanent. Each pruned model is a run directory
(``<run>/prune/sparsity-0.7/``) that ``evaluate``, ``export`` and ``bench`` accept; its test
accuracy comes from ``evaluate_run`` there. Writes ``prune/prune.csv``, ``prune/prune.json`` and
``plots/pruning/sparsity_vs_accuracy.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from mnistlab import frameworks, runs
from mnistlab.config import TrainConfig
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.fileio import write_json, write_text
from mnistlab.frameworks.pytorch import load_model
from mnistlab.runconfig import RunConfig
from mnistlab.training.loop import LoopOptions, evaluate, run_epochs, steps_per_epoch
from mnistlab.training.torch_step import TorchStep

PRUNE_DIR = "prune"
PLOT = "plots/pruning/sparsity_vs_accuracy.png"
FINETUNE_STREAM = 1000  # added to the epoch in the (seed, epoch) generator formula


def parse_sparsities(text: str) -> list[float]:
    """``"0.5,0.7,0.9"`` → ``[0.5, 0.7, 0.9]``; each must lie strictly between 0 and 1."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sparsity {text!r}: give fractions separated by commas, e.g. 0.5,0.7,0.9") from None
    if not values or any(not 0 < v < 1 for v in values):
        raise UserError(f"--sparsity {text!r}: every value must be strictly between 0 and 1, e.g. 0.5,0.7,0.9")
    return sorted(set(values))


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every conv and linear weight: the parameters magnitude pruning removes."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def sparsity(model: nn.Module) -> tuple[float, int, int]:
    """(fraction of zeros, zeros, total) over the prunable weights."""
    weights = [getattr(m, name) for m, name in prunable(model)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    return zeros / total, zeros, total


def finetune(model: nn.Module, cfg: TrainConfig, data, epochs: int) -> tuple[float, float, int]:
    """Fine-tune a masked model; keep the best epoch on validation. Returns (val acc before, best, epoch).

    The shared epoch loop trains it, writing nothing, with a constant learning rate and the
    run's own augmentation; its generator stream is offset so fine-tuning never replays the
    original run's draws.
    """
    cfg = dataclasses.replace(cfg, epochs=max(1, epochs), scheduler="none", amp="off", patience=0,
                              tensorboard=False, device="cpu")
    step = TorchStep(model, cfg, steps_per_epoch(len(data.train_y), cfg.batch_size), label="fine-tune")
    before = evaluate(step, data)[1]
    best = {"acc": before, "epoch": 0, "state": step.snapshot()}

    def keep_best(row: dict[str, float], _model: nn.Module) -> None:
        if row["val_acc"] > best["acc"]:
            best.update(acc=row["val_acc"], epoch=int(row["epoch"]), state=step.snapshot())

    if epochs:
        run_epochs(step, cfg, data, LoopOptions(progress=False, stream=FINETUNE_STREAM, on_epoch_end=keep_best))
    model.load_state_dict(best["state"])
    return before, best["acc"], best["epoch"]


def prune_one(run_dir: Path, config: RunConfig, data, amount: float, epochs: int, lr: float,
              data_dir: str | None) -> dict[str, Any]:
    """Prune the run's model to ``amount``, fine-tune, save as ``prune/sparsity-<amount>/``, evaluate."""
    t0 = time.perf_counter()
    model, _ = load_model(run_dir)
    cfg = dataclasses.replace(config.train, lr=lr)
    torch.manual_seed(cfg.seed)
    prune.global_unstructured(prunable(model), pruning_method=prune.L1Unstructured, amount=amount)
    val_pruned, val_acc, best_epoch = finetune(model, cfg, data, epochs)
    for module, name in prunable(model):
        prune.remove(module, name)
    reached, zeros, total = sparsity(model)

    out = run_dir / PRUNE_DIR / f"sparsity-{amount:g}"
    runs.prepare_run_dir(out, force=True)
    pruning = {"sparsity_target": amount, "sparsity_reached": reached, "finetune_epochs": epochs,
               "finetune_lr": lr, "best_finetune_epoch": best_epoch, "method": "global L1 unstructured"}
    runs.write_config(out, dataclasses.replace(config, kind="prune", pruned_from=str(run_dir), pruning=pruning))
    runs.save_weights(out, model)
    metrics = evaluate_run(out, data_dir=data_dir)
    raw = (out / runs.WEIGHTS).read_bytes()
    return {
        "sparsity_target": amount, "sparsity_reached": round(reached, 6), "zero_weights": zeros,
        "prunable_weights": total, "val_acc_pruned": val_pruned, "val_acc": val_acc,
        "best_finetune_epoch": best_epoch, "test_acc": metrics["accuracy"],
        "weights_bytes": len(raw), "weights_bytes_zlib": len(zlib.compress(raw, 6)),
        "seconds": round(time.perf_counter() - t0, 1), "run_dir": str(out.relative_to(run_dir)),
    }


def base_row(run_dir: Path, config: RunConfig, data, data_dir: str | None) -> dict[str, Any]:
    """The unpruned model's row (sparsity 0), from its saved predictions when they exist."""
    from mnistlab.maths.metrics import accuracy

    model, _ = load_model(run_dir)
    reached, zeros, total = sparsity(model)
    if (run_dir / runs.PREDICTIONS).is_file():
        test_acc = accuracy(*runs.load_predictions(run_dir / runs.PREDICTIONS))
    else:
        test_acc = evaluate_run(run_dir, data_dir=data_dir)["accuracy"]
    val_acc = evaluate(TorchStep(model, config.train, 1), data)[1]
    raw = (run_dir / runs.WEIGHTS).read_bytes()
    return {"sparsity_target": 0.0, "sparsity_reached": round(reached, 6), "zero_weights": zeros,
            "prunable_weights": total, "val_acc_pruned": val_acc, "val_acc": val_acc, "best_finetune_epoch": 0,
            "test_acc": test_acc, "weights_bytes": len(raw), "weights_bytes_zlib": len(zlib.compress(raw, 6)),
            "seconds": 0.0, "run_dir": "."}


def plot_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy (validation before/after fine-tuning, test) against the sparsity reached."""
    from mnistlab.analysis.style import BLUE, GREY, ORANGE, figure

    xs = [100 * r["sparsity_reached"] for r in rows]
    with figure(path, 8, 4.5, title) as fig:
        ax = fig.add_subplot()
        ax.plot(xs, [100 * r["test_acc"] for r in rows], "o-", color=BLUE, label="test (after fine-tuning)")
        ax.plot(xs, [100 * r["val_acc"] for r in rows], "s--", color=ORANGE, label="validation (after fine-tuning)")
        ax.plot(xs, [100 * r["val_acc_pruned"] for r in rows], "x:", color=GREY, label="validation (pruned, no fine-tuning)")
        ax.set_xlabel("weights set to zero (%)")
        ax.set_ylabel("accuracy (%)")
        ax.legend(loc="lower left")


def write_table(rows: list[dict[str, Any]], prune_dir: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(prune_dir / "prune.csv", buf.getvalue())
    write_json(prune_dir / "prune.json", rows)


@runs.writes_run
def prune_run(run_dir: str | Path, sparsities: list[float], *, finetune_epochs: int = 1, lr: float | None = None,
              train_subset: int | None = None, data_dir: str | None = None) -> list[dict[str, Any]]:
    """Prune a run at each sparsity; return the table (first row: the unpruned model)."""
    run_dir = Path(run_dir)
    if not sparsities or any(not 0 < s < 1 for s in sparsities):
        raise UserError("sparsities must lie strictly between 0 and 1, e.g. 0.5,0.7,0.9")
    if finetune_epochs < 0:
        raise UserError("--finetune-epochs must be 0 or more")
    config = runs.read_config(run_dir)
    if not config.is_ensemble:  # an ensemble: load_model says why not
        frameworks.of_run(config, run_dir).require("prune")
    load_model(run_dir)  # fails early, with a clear message, on a run without weights
    threads = config.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    d = config.data
    data = load_train_val(config.dataset, val_size=d.val_size, seed=d.split_seed, data_dir=data_dir,
                          train_subset=train_subset)
    # A tenth of the run's own learning rate: the weights are already near a good solution.
    lr = lr if lr is not None else config.train.lr / 10
    rows = [base_row(run_dir, config, data, data_dir)]
    rows += [prune_one(run_dir, config, data, s, finetune_epochs, lr, data_dir) for s in sparsities]
    base = rows[0]["test_acc"]
    for r in rows:
        r["test_acc_delta_points"] = round(100 * (r["test_acc"] - base), 3)
    write_table(rows, run_dir / PRUNE_DIR)
    plot_curve(rows, run_dir / PLOT, f"{config.arch}: magnitude pruning, {finetune_epochs} fine-tuning epoch(s)")
    return rows
