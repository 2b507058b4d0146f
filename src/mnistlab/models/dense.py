"""Dense CNN: DenseNet-style feature reuse (~59K params).

Inside a dense block every layer (BN → ReLU → 3×3 conv, DenseNet's pre-activation order) sees
the concatenation of the block's input and every earlier layer's output, and adds ``growth``
new channels to it. Features found early are reused rather than recomputed, so each layer can
be narrow. A transition (BN → ReLU → 2×2 average pool → 1×1 conv) halves the map between
blocks; pooling before the 1×1 convolution gives the same result as DenseNet's conv-then-pool
(both are linear and commute) at a quarter of the multiply-adds.

    >>> import torch
    >>> from mnistlab.models import create_model
    >>> create_model("dense")(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnistlab.models.blocks import ConvBNAct, FeaturesThenHead
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


def bn_relu(channels: int) -> OrderedDict[str, nn.Module]:
    return OrderedDict(bn=nn.BatchNorm2d(channels), relu=nn.ReLU(inplace=True))


class DenseLayer(nn.Sequential):
    """BN → ReLU → 3×3 conv to ``growth`` channels; returns the input with the new channels appended."""

    def __init__(self, in_ch: int, growth: int):
        super().__init__(OrderedDict(**bn_relu(in_ch), conv=nn.Conv2d(in_ch, growth, 3, padding=1, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, super().forward(x)], 1)


def dense_block(in_ch: int, growth: int, layers: int) -> nn.Sequential:
    """``layers`` dense layers; the output has ``in_ch + layers * growth`` channels."""
    return nn.Sequential(*[DenseLayer(in_ch + i * growth, growth) for i in range(layers)])


def transition(in_ch: int, out_ch: int) -> nn.Sequential:
    """BN → ReLU → 2×2 average pool → 1×1 conv: half the side, ``out_ch`` channels."""
    return nn.Sequential(OrderedDict(**bn_relu(in_ch), pool=nn.AvgPool2d(2),
                                     conv=nn.Conv2d(in_ch, out_ch, 1, bias=False)))


@register("dense", "DenseNet-style CNN: 2 dense blocks (concatenated features), ~59K params")
class DenseCNN(FeaturesThenHead):
    """DenseNet-style CNN: 2 dense blocks (concatenated features), ~59K params."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 stem: int = 24, growth1: int = 12, layers1: int = 3, mid: int = 48, growth2: int = 16,
                 layers2: int = 4):
        super().__init__()
        c1 = stem + layers1 * growth1
        c2 = mid + layers2 * growth2
        self.features = nn.Sequential(OrderedDict(
            stem=nn.Sequential(ConvBNAct(in_channels, stem), nn.MaxPool2d(2)),  # 28 → 14
            block1=dense_block(stem, growth1, layers1),
            trans1=transition(c1, mid),                                         # 14 → 7
            block2=dense_block(mid, growth2, layers2),
            norm=nn.Sequential(bn_relu(c2)),  # the blocks end un-normalised (pre-activation order)
        ))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, num_classes))
