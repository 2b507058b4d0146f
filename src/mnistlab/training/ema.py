"""An exponential moving average (EMA) of a model's weights, for evaluation, selection and saving.

    >>> from torch import nn
    >>> model = nn.Linear(2, 1)
    >>> ema = WeightEMA(model, decay=0.9)
    >>> _ = nn.init.zeros_(model.weight); ema.update(model)
    >>> ema.module is not model
    True

The average of the weights along the end of a run generalises a little better than the last
weights (Polyak averaging). PyTorch's own ``AveragedModel`` does the bookkeeping; buffers
(BatchNorm's running statistics) are averaged too (``use_buffers=True``), so the averaged model
is evaluated as it is, without a pass to recompute its statistics. The first update copies the
weights; update ``n`` (counting from 0) then moves the average ``1 - d`` of the way towards the
current weights, with ``d = min(decay, (1 + n) / (10 + n))``: the warm-up timm and TensorFlow
use, so that in a short run (or early in a long one) the average is not dominated by the random
initial weights (0.999 ** 500 is still 0.6).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class WeightEMA:
    """The moving average of ``model``'s parameters and buffers; call :meth:`update` after each optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)

    def decay_at(self, n: int) -> float:
        """The decay used by update ``n`` (0 = the first after the copy).

        >>> WeightEMA(nn.Linear(1, 1), 0.999).decay_at(0), WeightEMA(nn.Linear(1, 1), 0.5).decay_at(100)
        (0.1, 0.5)
        """
        return min(self.decay, (1 + n) / (10 + n))

    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        weight = 1 - self.decay_at(int(num_averaged) - 1)
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, weight)
            else:  # integer buffers (BatchNorm's batch counter): the current value
                a.copy_(c)

    @property
    def module(self) -> nn.Module:
        """The averaged model itself (same class and parameter names as the trained one)."""
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
