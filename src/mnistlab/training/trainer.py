"""Train a PyTorch model into a run directory: the PyTorch step on the shared epoch loop.

One epoch on all of MNIST (what ``mnistlab.train("simple", epochs=1)`` and ``mnistlab train`` call)::

    from mnistlab.config import TrainConfig
    from mnistlab.training.trainer import train

    result = train(TrainConfig(arch="simple", epochs=1), "runs/demo")
    result["best_val_acc"]       # 0.98...

The loop itself (data on the device, per-(seed, epoch) shuffles, selection, checkpoints, resume,
TensorBoard, several processes) lives in :mod:`mnistlab.training.loop`; this module only builds
the model and its :class:`~mnistlab.training.torch_step.TorchStep`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from mnistlab.config import TrainConfig
from mnistlab.data.datasets import TrainValData
from mnistlab.frameworks.registry import TABLE
from mnistlab.models import count_parameters, create_model
from mnistlab.models.heads import load_body
from mnistlab.runconfig import RunConfig
from mnistlab.training import distributed
from mnistlab.training.distributed import DistContext
from mnistlab.training.fit import fit, run_config
from mnistlab.training.loop import TrainingFailed, steps_per_epoch
from mnistlab.training.precision import Precision, resolve, torch_timer
from mnistlab.training.torch_step import TorchStep
from mnistlab.training.transfer_plan import TransferPlan

TORCH = TABLE["torch"]  # this module is a piece of PyTorch's entry (frameworks.torch_entry), which loads it

__all__ = ["TrainingFailed", "build_torch", "train"]


def build_torch(cfg: TrainConfig, data: TrainValData, device: torch.device, ctx: DistContext,
                run_dir: Path | None, threads: int, *, init: dict[str, torch.Tensor] | None = None
                ) -> tuple[TorchStep, RunConfig]:
    """The model of ``cfg`` and its step on ``device``, with the run's config.

    ``init``: a state dict whose body (every entry but the classifier's) the model starts from
    (transfer learning); the classifier keeps its fresh, seeded initialisation. A run with a
    ``transfer`` setting gets its :class:`~mnistlab.training.transfer_plan.TransferPlan` (frozen
    layers, per-group learning rates), on resume too.
    """
    model = create_model(cfg.arch, in_channels=data.info.in_channels, num_classes=data.info.num_classes,
                         image_size=data.info.image_size, **cfg.model_args)
    params = count_parameters(model)  # before a plan freezes any: the model's size
    if init is not None:
        load_body(model, init)
    plan = TransferPlan(model, cfg.transfer, cfg.epochs) if cfg.transfer else None
    precision = distributed.from_main(lambda: torch_precision(cfg, model, data, device, threads), ctx)
    step = TorchStep(model, cfg, steps_per_epoch(len(data.train_y), cfg.batch_size, ctx.world_size),
                     device=device, ctx=ctx, run_dir=run_dir, plan=plan, precision=precision)
    return step, run_config(cfg, data, params, threads, framework=TORCH.name, model_file=TORCH.model_file)


def torch_precision(cfg: TrainConfig, model: torch.nn.Module, data: TrainValData, device: torch.device,
                    threads: int) -> Precision:
    """``cfg.amp`` resolved for this model (rank 0 decides for all): under ``auto`` on a native-bf16
    CPU, a timing of a copy of ``model`` at the run's batch size, cached per kind of run."""
    info = data.info
    shape = (info.in_channels, info.image_size, info.image_size)
    key = (f"{TORCH.name} | {cfg.arch} {sorted(cfg.model_args.items())} | input {shape} | batch {cfg.batch_size} | "
           f"threads {threads} | channels_last {cfg.channels_last}")
    timer = torch_timer(model, shape, info.num_classes, cfg.batch_size, cfg.channels_last)
    return resolve(cfg.amp, device.type, timer=timer, key=key, who=TORCH.label)


def train(cfg: TrainConfig, out: str | Path, *, data_dir: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, data: TrainValData | None = None,
          on_epoch_end: Callable[[dict[str, float], torch.nn.Module], None] | None = None,
          stop_when: Callable[[dict[str, float]], str | None] | None = None,
          config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into the run directory ``out`` and return the training summary.

    ``resume=True`` continues the run in ``out`` from its last completed epoch, with the
    settings stored there (``cfg`` may be None). ``data`` may be passed to reuse tensors already
    in memory. ``on_epoch_end(row, model)`` is called after each epoch's checkpoint (benchmarks use it);
    ``stop_when(row)`` may end the run after an epoch with a reason (a sweep's pruner says "pruned").
    ``config_extra`` adds keys to a new run's config.json (see :func:`~mnistlab.training.fit.fit`).
    """
    return fit(cfg, out, build=build_torch, framework=TORCH.name, data_dir=data_dir, resume=resume, force=force,
               progress=progress, data=data, on_epoch_end=on_epoch_end, stop_when=stop_when,
               config_extra=config_extra)


build = build_torch  # the name every framework's trainer module gives its step builder (Framework.build)
