"""Replay a captured CUDA graph of the training step instead of launching its kernels from Python.

    >>> calls = []
    >>> step = GraphedStep(lambda x, y: (calls.append(len(y)) or x.sum(), y.sum()), warmup=1,
    ...                    capture=EagerCapture)
    >>> _ = step(torch.ones(4, 2), torch.ones(4)); step.captured    # warm-up, eagerly
    False
    >>> loss, _ = step(torch.ones(4, 2), torch.ones(4)); step.captured, float(loss)
    (True, 8.0)
    >>> _ = step(torch.ones(3, 2), torch.ones(3)); calls    # a short last batch runs eagerly
    [4, 4, 3]

On a GPU a small model's training step is a few hundred kernel launches, each a few
microseconds of Python and driver time; for the speedrun model on an H100 they cost ~3 ms a step
while the arithmetic takes a fraction of that. A CUDA graph records the step's kernels once and
replays them all with one call. The recipe is PyTorch's whole-network capture
(docs: "CUDA semantics", "CUDA Graphs"): a few warm-up steps on a side stream, capture one step
on static input buffers, then copy each batch into the buffers and replay.

What makes a replay the same step as an eager one (:func:`unsupported` names what breaks it):

* the optimiser is ``capturable``: its step counters and learning rate are device tensors, and
  the scheduler writes the learning rate in place (``TorchStep`` builds it so);
* gradients are zeroed in place, never set to None: their memory is baked into the graph;
* every captured batch has one shape: a short last batch runs eagerly (same parameters, same
  optimiser, same arithmetic);
* no setting changes between steps except the learning rate (OneCycle's beta1 cycling does:
  a fixed ``--beta1`` is needed);
* nothing in the step reads a value back to Python: no loss scaler (``--amp``), no EMA (its first
  update branches on a counter), no per-epoch change of which layers train (transfer plans),
  one process (DDP's hooks are not captured here).

The warm-up steps and the captured step are real training steps: nothing is trained twice.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

log = logging.getLogger("mnistlab.train")

WARMUP_STEPS = 3  # eager steps on a side stream before the capture (PyTorch's recipe uses 3)

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def unsupported(cfg: Any, distributed: bool, transfer: bool, scaled: bool = False) -> str | None:
    """Why ``cfg``'s step cannot be captured (a phrase for a warning), or None when it can.

    ``scaled``: the run trains in fp16 with a loss scaler (``--amp`` on or auto on CUDA).
    """
    if scaled:
        return f"--amp {cfg.amp}'s fp16 loss scaler reads the GPU every step"
    if cfg.scheduler == "onecycle" and cfg.beta1 is None:
        return "OneCycle cycles Adam's beta1 every step (a number the graph would freeze); give --beta1"
    if cfg.ema_decay > 0:
        return "the EMA's first update reads a counter"
    if distributed:
        return "several processes (DDP) are not captured"
    if transfer:
        return "a transfer plan changes which layers train"
    return None


class CudaCapture:
    """One step captured as a ``torch.cuda.CUDAGraph`` on static buffers."""

    def __init__(self, fn: StepFn, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x.clone(), y.clone()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn(self.x, self.y)

    def replay(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return tuple(o.clone() for o in self.out)  # the static outputs are overwritten by the next replay


class EagerCapture:
    """A stand-in with :class:`CudaCapture`'s interface that runs the step eagerly (tests, CPUs)."""

    def __init__(self, fn: StepFn, x: torch.Tensor, y: torch.Tensor):
        self.fn, self.x, self.y = fn, x.clone(), y.clone()

    def replay(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.x.copy_(x)
        self.y.copy_(y)
        return tuple(o.clone() for o in self.fn(self.x, self.y))


def _on_side_stream(fn: StepFn, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run ``fn`` on a side stream ordered after and before the current one (the capture recipe's warm-up)."""
    if not x.is_cuda:
        return fn(x, y)
    side, current = torch.cuda.Stream(), torch.cuda.current_stream()
    side.wait_stream(current)
    with torch.cuda.stream(side):
        out = fn(x, y)
    current.wait_stream(side)
    return out


class GraphedStep:
    """``fn(x, y)`` (one optimiser step, returning tensors) captured after ``warmup`` eager calls.

    The first full-size batch sets the captured shape; a batch of another shape runs eagerly.
    The first capture replays at once, so the batch it was captured on is trained exactly once.
    A capture that fails (nothing of the step has run then) logs a warning and the run goes on
    eagerly.
    """

    def __init__(self, fn: StepFn, warmup: int = WARMUP_STEPS, capture: type = CudaCapture):
        self.fn, self.warmup, self.capture_cls = fn, warmup, capture
        self.shape: torch.Size | None = None
        self.calls = 0
        self.capture: Any = None

    @property
    def captured(self) -> bool:
        return self.capture is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.shape is None:
            self.shape = x.shape
        if x.shape != self.shape:
            return self.fn(x, y)
        if self.capture is None:
            if self.calls < self.warmup:
                self.calls += 1
                return _on_side_stream(self.fn, x, y)
            try:
                self.capture = self.capture_cls(self.fn, x, y)  # records the step; runs nothing yet
            except RuntimeError as exc:  # a driver or an op that cannot be captured: train on, eagerly
                log.warning("warning: CUDA graph capture failed (%s); training without it",
                            str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
                self.shape = torch.Size([-1])  # no batch has this shape: every later step runs eagerly
                return self.fn(x, y)
        return self.capture.replay(x, y)
