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
weights; each later one moves the average ``1 - decay`` of the way towards the current weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightEMA:
    """The moving average of ``model``'s parameters and buffers; call :meth:`update` after each optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

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
