"""Faithful re-implementations of two public MNIST recipes, for ``time_to_accuracy.py`` to race.

    >>> from reference_recipes import RECIPES                                  # doctest: +SKIP
    >>> RECIPES["public"](train_x, train_y, seed=0, device=dev, on_epoch_end=f) # doctest: +SKIP

* ``public``: the fastest public recipe we know of, a GPU speedrun (99.04% mean of 30 seeds in
  0.76 s on a laptop GPU): conv5×5(24) → pool → relu → conv3×3(32) → pool → relu → fc256 → fc10,
  one epoch over all 60,000 training images, batch 256, Adam lr 1e-2 with betas (0.7, 0.9),
  OneCycle without momentum cycling, the data normalised once and resident on the device.
* ``examples``: pytorch/examples ``mnist/main.py``: conv3×3(32) → conv3×3(64) → pool → dropout
  0.25 → fc128 → dropout 0.5 → fc10 with log-softmax and NLL, Adadelta lr 1.0, StepLR γ 0.7 per
  epoch, batch 64, 60,000 training images. Its DataLoader is replaced by in-memory tensors (which
  only helps it: the comparison is with its model and optimiser, not its data pipeline).

Each recipe calls ``on_epoch_end(epoch, model)`` after every epoch and stops when it returns True
(the caller measured what it wanted); the time spent inside the callback is the caller's to subtract.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.1307, 0.3081  # both recipes' normalisation

OnEpochEnd = Callable[[int, nn.Module], bool]


def public_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 24, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(24, 32, 3), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10))


class ExamplesNet(nn.Module):
    """pytorch/examples mnist/main.py's ``Net`` (1,199,882 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = self.dropout1(x).flatten(1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def _normalised(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return ((images.to(device).float() / 255 - MEAN) / STD).unsqueeze(1)


def run_public(images: torch.Tensor, labels: torch.Tensor, *, seed: int, device: torch.device,
               on_epoch_end: OnEpochEnd, cap_epochs: int = 1, channels_last: bool = True) -> nn.Module:
    """The public GPU speedrun: one OneCycle epoch (``cap_epochs`` is ignored: the schedule is one epoch)."""
    torch.manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x, y = _normalised(images, device).contiguous(memory_format=fmt), labels.to(device)
    model = public_model().to(device, memory_format=fmt)
    batch = 256
    steps = len(y) // batch  # the recipe drops the last partial batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.7, 0.9))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps, cycle_momentum=False)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(device)
    model.train()
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    on_epoch_end(1, model)
    return model


def run_examples(images: torch.Tensor, labels: torch.Tensor, *, seed: int, device: torch.device,
                 on_epoch_end: OnEpochEnd, cap_epochs: int = 10, channels_last: bool = False) -> nn.Module:
    """pytorch/examples: Adadelta lr 1.0, StepLR(1, γ 0.7), batch 64, up to ``cap_epochs`` epochs."""
    torch.manual_seed(seed)
    x, y = _normalised(images, device), labels.to(device)
    model = ExamplesNet().to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, cap_epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=gen).to(device)
        for start in range(0, len(y), 64):  # DataLoader keeps the last partial batch
            idx = order[start:start + 64]
            loss = F.nll_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if on_epoch_end(epoch, model):
            break
    return model


RECIPES: dict[str, Callable[..., nn.Module]] = {"public": run_public, "examples": run_examples}
