"""Batched, seeded augmentation on tensors: affine (rotation, translation, scale), mirroring, random erasing.

    >>> import torch
    >>> aug = Chain((RandomAffine(degrees=10, translate=0.1, scale=(0.9, 1.1)), RandomErasing(p=0.5)))
    >>> g = torch.Generator().manual_seed(0)
    >>> aug(torch.zeros(8, 1, 28, 28), g).shape
    torch.Size([8, 1, 28, 28])

One ``affine_grid`` + ``grid_sample`` call transforms a whole batch, which costs a few percent
of a training step; per-image PIL transforms would cost more than the model itself on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor (random draws, a batch's indices) on ``device``; to a GPU through pinned memory,
    without waiting for it.

    A copy from ordinary host memory first waits for every queued GPU kernel, which stalls the
    training loop once per batch; PyTorch keeps the pinned buffer alive until the copy is done.
    A strided slice (a rank's share of a batch) is made contiguous by the pinning copy.
    """
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class RandomAffine:
    """Random rotation (± ``degrees``), translation (± ``translate`` of the side) and scale.

    The input is a normalised float batch ``[N, C, H, W]``; the area uncovered by the transform
    is filled with ``fill`` (pass the normalised value of a black pixel so borders stay
    background).
    """

    degrees: float = 10.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    fill: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        u = torch.rand(n, 4, generator=generator)
        angle = (u[:, 0] * 2 - 1) * math.radians(self.degrees)
        lo, hi = self.scale
        scale = lo + u[:, 1] * (hi - lo)
        shift = (u[:, 2:] * 2 - 1) * self.translate * 2  # grid coordinates span [-1, 1]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = to_device(torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(x.dtype), x.device)  # drawn on the CPU generator (same run on every device), applied where x lives
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # grid_sample pads with zeros; shifting by ``fill`` makes the padding equal ``fill``.
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.fill


@dataclass(frozen=True)
class RandomFlip:
    """With chance ``p`` per image, mirror it left-right: a shirt is a shirt either way, a 2 is not.

    One draw per image from ``generator`` (CPU), so a run replays the same flips on any device.
    """

    p: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = to_device((torch.rand(x.shape[0], generator=generator) < self.p).view(-1, 1, 1, 1), x.device)
        return torch.where(flip, x.flip(-1), x)


@dataclass(frozen=True)
class RandomErasing:
    """With chance ``p`` per image, set one random rectangle to ``fill`` (Zhong et al., 2017).

    The rectangle covers ``area`` (a fraction of the image, drawn uniformly) with an aspect ratio
    drawn log-uniformly from ``ratio``; on digits this hides part of a stroke, so the model must
    not rely on any single one. Five draws per image come from ``generator`` (CPU), as for
    :class:`RandomAffine`, so a run replays the same masks on any device; only the rectangle's
    four bounds per image travel to the device, where the ``[N, 1, H, W]`` mask is built.
    """

    p: float = 0.25
    area: tuple[float, float] = (0.02, 0.2)
    ratio: tuple[float, float] = (0.3, 3.3)
    fill: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        u = torch.rand(n, 5, generator=generator)
        area = (self.area[0] + u[:, 0] * (self.area[1] - self.area[0])) * h * w
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + u[:, 1] * (hi - lo))
        eh, ew = (area * aspect).sqrt().clamp(1, h), (area / aspect).sqrt().clamp(1, w)
        top, left = u[:, 2] * (h - eh), u[:, 3] * (w - ew)
        # An image the chance ``p`` skips gets an empty rectangle (bottom = top). The bounds are
        # summed here, on the CPU, so every device compares against the same float32 numbers.
        bottom = torch.where(u[:, 4] < self.p, top + eh, top)
        box = to_device(torch.stack([top, bottom, left, left + ew], 1), x.device).view(n, 4, 1, 1)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= box[:, 0]) & (rows < box[:, 1]) & (cols >= box[:, 2]) & (cols < box[:, 3])
        return x.masked_fill(inside.unsqueeze(1), self.fill)


@dataclass(frozen=True)
class Chain:
    """Apply ``transforms`` in order, each drawing from the same generator."""

    transforms: tuple

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x
