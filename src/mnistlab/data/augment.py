"""Batched, seeded affine augmentation on tensors (rotation, translation, scale).

    >>> import torch
    >>> aug = RandomAffine(degrees=10, translate=0.1, scale=(0.9, 1.1))
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
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        ).to(x.device, x.dtype)  # drawn on the CPU generator (same run on every device), applied where x lives
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # grid_sample pads with zeros; shifting by ``fill`` makes the padding equal ``fill``.
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.fill
