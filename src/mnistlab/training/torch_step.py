"""The PyTorch step the epoch loop drives: optimiser, schedule, mixed precision, DDP, gradient monitor.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.models import create_model
    >>> step = TorchStep(create_model("simple"), TrainConfig(epochs=1), steps_per_epoch=10)
    >>> step.begin_epoch(1, seed=1) > 0
    True
    >>> loss, correct = step.train_batch(torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    >>> step.logits(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

Mixed precision is the run's resolved :class:`~mnistlab.training.precision.Precision` (``--amp``):
fp16 autocast with a ``GradScaler`` on CUDA, bf16 autocast on a CPU, or float32; evaluation
always runs in float32. Under torchrun the model is wrapped in
``DistributedDataParallel`` for training only; weights are saved from the bare module, so the
saved names carry no ``module.`` prefix. With ``ema_decay`` > 0 an EMA of the weights
(:mod:`~mnistlab.training.ema`) follows every optimiser step, and it is what ``logits``
(validation, hence selection) and ``save_best`` use.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab import runs
from mnistlab.config import (ONECYCLE_BETA1, ONECYCLE_DIV_FACTOR, ONECYCLE_FINAL_DIV_FACTOR, ONECYCLE_PCT_START,
                             TrainConfig)
from mnistlab.training.cuda_graph import GraphedStep, unsupported
from mnistlab.training.distributed import DistContext
from mnistlab.training.ema import WeightEMA
from mnistlab.training.gradflow import GradNormMonitor
from mnistlab.training.precision import Precision, decide

log = logging.getLogger("mnistlab.train")


def make_optimizer(model: nn.Module, cfg: TrainConfig, groups: list[dict[str, Any]] | None = None,
                   capturable_on: torch.device | None = None) -> torch.optim.Optimizer:
    """Adam or AdamW over ``model``, or over ``groups`` (``params`` and ``lr_scale``: that group's lr is lr × scale).

    ``capturable_on`` (a CUDA device): an optimiser a CUDA graph can capture, its learning rates
    device tensors that the scheduler updates in place (the capturable foreach kernels, even with
    ``fused_optimizer``, whose fused kernel is used otherwise).
    """
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    betas = (0.9 if cfg.beta1 is None else cfg.beta1, cfg.beta2)
    groups = groups or [{"params": list(model.parameters()), "lr_scale": 1.0}]

    def lr(scale: float) -> float | torch.Tensor:
        return cfg.lr * scale if capturable_on is None else torch.tensor(cfg.lr * scale, device=capturable_on)

    capturable = capturable_on is not None
    return cls([{"params": g["params"], "lr": lr(g["lr_scale"])} for g in groups], lr=cfg.lr, betas=betas,
               weight_decay=cfg.weight_decay, capturable=capturable,
               fused=True if cfg.fused_optimizer and not capturable else None)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns (scheduler or None, whether it steps per batch)."""
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[float(g["lr"]) for g in opt.param_groups], epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
            pct_start=ONECYCLE_PCT_START,
            div_factor=ONECYCLE_DIV_FACTOR, final_div_factor=ONECYCLE_FINAL_DIV_FACTOR,
            max_momentum=ONECYCLE_BETA1[0], base_momentum=ONECYCLE_BETA1[1],
            cycle_momentum=cfg.beta1 is None)  # a fixed --beta1 stays fixed
        return sched, True
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    return None, False


def _graph_supported(cfg: TrainConfig, distributed: bool, transfer: bool, precision: Precision) -> bool:
    """Whether ``--cuda-graph`` can capture this run's step; a warning when it cannot."""
    reason = unsupported(cfg, distributed, transfer, scaled=precision.scaled)
    if reason is not None:
        log.warning("warning: --cuda-graph is off for this run: %s; training without it", reason)
    return reason is None


class TorchStep:
    """A PyTorch model, its optimiser and schedule, as a :class:`~mnistlab.training.loop.Step`.

    ``run_dir`` (rank 0 of a run that writes files) enables the gradient monitor and its
    ``grad_norms.csv``; ``steps_per_epoch`` counts this rank's batches (OneCycle's length).
    ``plan`` (a :class:`~mnistlab.training.transfer_plan.TransferPlan`, for transfer runs) gives
    the optimiser's parameter groups and freezes the body in the epochs it says. ``precision``:
    the run's resolved precision (:func:`mnistlab.training.precision.resolve`); by default ``cfg.amp``
    decided without a timing (``auto`` on a CPU is then float32).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, steps_per_epoch: int, *,
                 device: torch.device = torch.device("cpu"), ctx: DistContext = DistContext(),
                 run_dir: Path | None = None, label: str | None = None, plan: Any = None,
                 precision: Precision | None = None):
        self.cfg, self.device, self.label = cfg, device, label or cfg.arch
        self.precision = precision or decide(cfg.amp, device.type)
        self.model = model.to(device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.trained: nn.Module = self.model
        if ctx.active:
            from torch.nn.parallel import DistributedDataParallel

            self.trained = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.monitor = GradNormMonitor(self.model, run_dir) if run_dir is not None else None
        self.ema = WeightEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.plan = plan
        graphed = cfg.cuda_graph and device.type == "cuda" and _graph_supported(cfg, ctx.active, plan is not None,
                                                                                 self.precision)
        self.opt = make_optimizer(self.model, cfg, plan.param_groups() if plan is not None else None,
                                  capturable_on=device if graphed else None)
        self.sched, self.per_batch = make_scheduler(self.opt, cfg, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.scaled)
        self.graphed = GraphedStep(self._step) if graphed else None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def begin_epoch(self, epoch: int, seed: int) -> float:
        self.trained.train()
        if self.plan is not None:
            self.plan.begin_epoch(epoch)
        torch.manual_seed(seed)  # dropout masks: the same on resume (seeds CUDA too)
        return float(self.opt.param_groups[-1]["lr"])  # the classifier's group when a transfer plan has several

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss_sum, correct = self.graphed(x, y) if self.graphed is not None else self._step(x, y)
        if self.per_batch:
            self.sched.step()  # a capturable optimiser's lr is a tensor: written in place, outside the graph
        return loss_sum, correct

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward, optimiser step: what a CUDA graph captures (nothing here reads the GPU)."""
        with torch.autocast(self.device.type, dtype=self.precision.dtype, enabled=self.precision.autocast):
            logits = self.trained(self._input(x))
            loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=self.graphed is None)  # a graph's gradients keep their memory
        self.scaler.scale(loss).backward()
        if self.monitor is not None:
            self.scaler.unscale_(self.opt)  # no-op unless fp16; the monitor sees true gradients
            self.monitor.step()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach().float() * len(y), (logits.argmax(1) == y).sum()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        if self.sched is not None and not self.per_batch:
            self.sched.step()
        if self.monitor is None:
            return {}
        self.monitor.end_epoch(epoch)  # warns on stderr when a layer's gradients vanish or explode
        return {r["layer"]: r["mean_norm"] for r in self.monitor.rows if r["epoch"] == epoch}

    @property
    def evaluated(self) -> nn.Module:
        """The model that is validated and saved: the EMA when there is one, else the trained weights."""
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        model = self.evaluated
        model.eval()
        return model(self._input(x)).float()

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.graphed is not None:  # the loaded learning rates, back on the device the graph will read
            for group in self.opt.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        if self.sched is not None:
            self.sched.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])

    def save_best(self, run_dir: Path) -> None:
        runs.save_weights(run_dir, self.evaluated)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the evaluated weights kept in memory (pruning keeps its best epoch this way)."""
        return copy.deepcopy(self.evaluated.state_dict())
