"""Speedrun CNN: the small model of ``--preset speedrun``, built for time to 99% on a CPU.

    >>> import torch
    >>> model = SpeedrunCNN()
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> model.macs()
    559360

Conv5×5 stride 2 (16) → ReLU → Conv3×3 (24) → MaxPool → ReLU → FC256 → ReLU → FC10, no
padding, no batch norm: 559,360 multiply-adds per image, 0.45× the 1,244,160 of the fastest
public recipe's model (conv5×5(24) → pool → conv3×3(32) → pool → fc256, a GPU speedrun). On a
CPU that model spends about a quarter of its step in the max-pool over its 24×24 first maps and
that pool's gradient (memory-bound, not multiply-adds); a stride-2 first convolution skips the
24×24 maps altogether. Measurements: docs/speed.md. Pooling comes before the ReLU: the same
function (max and ReLU commute) on a quarter of the values.
"""

from __future__ import annotations

from torch import nn

from mnistlab.models.blocks import FeaturesThenHead, flat_features
from mnistlab.models.complexity import count_macs
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


@register("speedrun", "Speedrun CNN: 2 conv + 2 dense layers, built for time to 99% on a CPU")
class SpeedrunCNN(FeaturesThenHead):
    """Speedrun CNN: 2 conv + 2 dense layers, built for time to 99% on a CPU."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 width1: int = 16, width2: int = 24, hidden: int = 256):
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width1, 5, stride=2), nn.ReLU(inplace=True),
            nn.Conv2d(width1, width2, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True),
        )
        n_flat = flat_features(self.features, in_channels, image_size)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(n_flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def macs(self) -> int:
        """Multiply-adds of one image's forward pass (convolutions and dense layers)."""
        return count_macs(self, self.in_channels, self.image_size)
