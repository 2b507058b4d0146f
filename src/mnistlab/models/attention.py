"""Attention CNN: conv stages with squeeze-and-excitation channel attention (~86K params).

Squeeze-and-excitation (Hu et al., 2018) looks at a whole feature map at once: it averages each
channel over the image ("squeeze"), passes the vector through a small bottleneck MLP (1×1
convolutions, reduction 4) and a sigmoid ("excite"), and rescales each channel by the result.
A stage can so turn up the channels that matter for *this* image (a loop detector for a 6 or 8,
a stroke end for a 1 or 7) at a cost of a few hundred multiply-adds per stage.

    >>> import torch
    >>> from mnistlab.models import create_model
    >>> create_model("attention")(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mnistlab.models.blocks import ConvBNAct, FeaturesThenHead
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


class SqueezeExcite(nn.Module):
    """Channel attention: ``x * sigmoid(W2 · relu(W1 · mean_hw(x)))`` with ``channels // reduction`` hidden units."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.gate = nn.Sequential(OrderedDict(
            pool=nn.AdaptiveAvgPool2d(1),
            reduce=nn.Conv2d(channels, hidden, 1),
            relu=nn.ReLU(inplace=True),
            expand=nn.Conv2d(hidden, channels, 1),
            sigmoid=nn.Sigmoid(),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def se_stage(in_ch: int, out_ch: int, convs: int, stride: int = 1) -> nn.Sequential:
    """``convs`` ConvBNAct layers (the first with ``stride``), then squeeze-and-excitation."""
    layers = [ConvBNAct(in_ch if i == 0 else out_ch, out_ch, stride=stride if i == 0 else 1) for i in range(convs)]
    return nn.Sequential(*layers, SqueezeExcite(out_ch))


@register("attention", "CNN with squeeze-and-excitation channel attention, ~86K params")
class AttentionCNN(FeaturesThenHead):
    """CNN with squeeze-and-excitation channel attention, ~86K params."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 width: int = 24):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(OrderedDict(
            stem=nn.Sequential(ConvBNAct(in_channels, w1), nn.MaxPool2d(2)),  # 28 → 14
            stage1=se_stage(w1, w1, 1),
            stage2=se_stage(w1, w2, 2, stride=2),                               # 14 → 7
            stage3=se_stage(w2, w3, 1, stride=2),                               # 7 → 4
        ))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w3, num_classes))
