"""Gradient-flow monitoring: per-layer gradient norms, summarised each epoch into ``grad_norms.csv``.

    >>> import torch, tempfile
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    >>> monitor = GradNormMonitor(model, tempfile.mkdtemp())
    >>> model(torch.ones(5, 4)).sum().backward(); monitor.step()
    >>> monitor.end_epoch(1)          # warnings; none for healthy gradients
    []
    >>> [row["layer"] for row in read_grad_norms(monitor.path.parent)]
    ['0', '1']

The trainer calls :meth:`GradNormMonitor.step` after every ``loss.backward()`` and
:meth:`GradNormMonitor.end_epoch` once per epoch. Only weight matrices and kernels (parameters
with more than one dimension) are watched: biases and batch-norm scales say little about whether
the signal reaches a layer, and leaving them out keeps the per-batch cost to one small
reduction per layer. This module imports only torch so training never needs the ``explain`` extra.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

import torch

from mnistlab.fileio import write_text

GRAD_NORMS = "grad_norms.csv"
FIELDS = ("epoch", "layer", "mean_norm", "min_norm", "max_norm", "status")
# Below this mean L2 norm a layer has effectively stopped learning; above this maximum the
# updates are large enough that Adam's normalisation hides it but SGD would diverge.
VANISHING, EXPLODING = 1e-7, 1e3
# With no logging configured, Python prints warnings to stderr: they show even with --quiet.
log = logging.getLogger("mnistlab.gradflow")


def layer_name(param_name: str) -> str:
    """``stage1.0.0.weight`` → ``stage1.0.0``: the module that owns the parameter."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


def classify(mean: float, max_: float) -> str:
    """``ok``, ``vanishing``, ``exploding`` or ``non-finite`` for one layer's epoch summary."""
    if not (math.isfinite(mean) and math.isfinite(max_)):
        return "non-finite"
    if max_ > EXPLODING:
        return "exploding"
    if mean < VANISHING:
        return "vanishing"
    return "ok"


class GradNormMonitor:
    """Accumulate per-layer gradient L2 norms during an epoch; write and check them at its end."""

    def __init__(self, model: torch.nn.Module, run_dir: str | Path):
        watched = [(layer_name(n), p) for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
        self.layers = [name for name, _ in watched]
        self.params = [p for _, p in watched]
        self.path = Path(run_dir) / GRAD_NORMS
        # A resumed run keeps the rows of the epochs it already finished.
        self.rows: list[dict[str, Any]] = read_grad_norms(run_dir)
        # The epoch's sums, kept beside the parameters (on the GPU when they are): no copy to the host
        # per batch. Allocated once and zeroed in place (_reset): a captured CUDA graph of the step
        # keeps writing to these very tensors, the batch count included.
        n, dev = len(self.params), self.params[0].device if self.params else torch.device("cpu")
        self._sum, self._min, self._max = (torch.empty(n, dtype=torch.float64, device=dev) for _ in range(3))
        self._batches = torch.empty((), dtype=torch.int64, device=dev)
        self._reset()

    def _reset(self) -> None:
        """Start an epoch: sums and count to 0, minima to infinity, in place."""
        self._sum.zero_()
        self._min.fill_(math.inf)
        self._max.zero_()
        self._batches.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """Record the current gradients (call right after ``loss.backward()``)."""
        if not self.params:
            return
        grads = [p.grad for p in self.params]
        if all(g is not None for g in grads):  # one fused kernel launch for every layer's norm
            norms = torch.stack(torch._foreach_norm(grads)).double()
        else:  # a frozen layer (transfer): its norm counts as 0
            zero = torch.zeros((), dtype=torch.float64, device=self._sum.device)
            norms = torch.stack([g.detach().norm().double() if g is not None else zero for g in grads])
        self._sum += norms
        torch.minimum(self._min, norms, out=self._min)
        torch.maximum(self._max, norms, out=self._max)
        self._batches += 1

    def end_epoch(self, epoch: int) -> list[str]:
        """Write this epoch's rows to ``grad_norms.csv`` (atomically); log and return one warning per bad layer."""
        if int(self._batches) == 0:
            return []
        mean = (self._sum / self._batches).tolist()
        warnings = []
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch]
        for name, p, m, lo, hi in zip(self.layers, self.params, mean, self._min.tolist(), self._max.tolist()):
            if not p.requires_grad:
                continue  # frozen this epoch (a transfer run's body): no gradient to judge, nothing vanished
            status = classify(m, hi)
            self.rows.append({"epoch": epoch, "layer": name, "mean_norm": m, "min_norm": lo,
                              "max_norm": hi, "status": status})
            if status != "ok":
                warnings.append(f"epoch {epoch}: gradients of layer {name} are {status} "
                                f"(mean norm {m:.2e}, max {hi:.2e}; healthy is {VANISHING:g}..{EXPLODING:g})")
        write_grad_norms(self.path, self.rows)
        for warning in warnings:
            log.warning("warning: %s", warning)
        self._reset()
        return warnings


def write_grad_norms(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def read_grad_norms(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's ``grad_norms.csv`` (empty when the run predates the monitor)."""
    path = Path(run_dir) / GRAD_NORMS
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{"epoch": int(r["epoch"]), "layer": r["layer"], "mean_norm": float(r["mean_norm"]),
                 "min_norm": float(r["min_norm"]), "max_norm": float(r["max_norm"]), "status": r["status"]}
                for r in csv.DictReader(fh)]
