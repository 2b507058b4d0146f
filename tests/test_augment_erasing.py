"""Random erasing builds its mask where the batch lives: the pixels and draws of the CPU mask it replaced."""

from __future__ import annotations

import math

import pytest
import torch

from mnistlab.data import augment
from mnistlab.data.augment import RandomErasing


def _erase_as_before(e: RandomErasing, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The implementation before the mask moved to the device (CPU mask, copied whole): the reference."""
    n, _, h, w = x.shape
    u = torch.rand(n, 5, generator=generator)
    area = (e.area[0] + u[:, 0] * (e.area[1] - e.area[0])) * h * w
    lo, hi = math.log(e.ratio[0]), math.log(e.ratio[1])
    aspect = torch.exp(lo + u[:, 1] * (hi - lo))
    eh, ew = (area * aspect).sqrt().clamp(1, h), (area / aspect).sqrt().clamp(1, w)
    top, left = u[:, 2] * (h - eh), u[:, 3] * (w - ew)
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    mask = (inside & (u[:, 4] < e.p).view(n, 1, 1)).unsqueeze(1)
    return x.masked_fill(mask, e.fill)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("n", [1, 5, 128])
@pytest.mark.parametrize("erasing", [RandomErasing(), RandomErasing(p=1.0, area=(0.3, 0.9), fill=-0.4242),
                                     RandomErasing(p=0.0)], ids=["default", "always-large", "never"])
def test_the_same_pixels_and_the_same_draws_as_the_old_mask(seed, n, erasing):
    x = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(100 + seed))
    new_g, old_g = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    new, old = erasing(x, new_g), _erase_as_before(erasing, x, old_g)
    assert torch.equal(new, old)
    assert torch.equal(new_g.get_state(), old_g.get_state())  # the next batch's draws are unchanged too
    if erasing.p == 0.25 and n == 128:  # misses and hits in one batch
        hit = (new != x).flatten(1).any(1)
        assert 0 < int(hit.sum()) < n


def test_channels_and_a_non_square_image_follow_the_old_mask():
    x = torch.randn(9, 3, 32, 20, generator=torch.Generator().manual_seed(3))
    e = RandomErasing(p=0.5, ratio=(0.2, 5.0), fill=2.0)
    assert torch.equal(e(x, torch.Generator().manual_seed(4)), _erase_as_before(e, x, torch.Generator().manual_seed(4)))


def test_only_the_bounds_cross_to_the_device(monkeypatch):
    """Four numbers per image reach ``to_device``, not an N×H×W mask."""
    sent = []

    def spy(t, device):
        sent.append(t.numel())
        return t.to(device)

    monkeypatch.setattr(augment, "to_device", spy)
    x = torch.zeros(64, 1, 28, 28)
    out = RandomErasing(p=1.0, fill=-1.0)(x, torch.Generator().manual_seed(0))
    assert bool((out == -1.0).flatten(1).any(1).all())  # every image erased, through the spied path
    assert sent == [64 * 4]
