"""Building blocks shared by the architectures.

    >>> import torch
    >>> block = ResidualBlock(32, 64, stride=2)
    >>> block(torch.zeros(1, 32, 14, 14)).shape
    torch.Size([1, 64, 7, 7])
"""

from __future__ import annotations

import torch
from torch import nn


class FeaturesThenHead(nn.Module):
    """Base of every architecture: logits are ``self.head(self.features(x))``.

    ``features`` (the body, ending in the last feature map) and ``head`` (an ``nn.Sequential``
    ending in the classifier) are what Grad-CAM, feature maps and transfer learning reach for.
    """

    features: nn.Module
    head: nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvBNAct(nn.Sequential):
    """3×3 convolution (no bias: batch norm supplies it) → BatchNorm → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3×3 ConvBN layers with a skip connection (1×1 projection when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, out_ch, stride=stride)
        self.conv2 = ConvBNAct(out_ch, out_ch, act=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


def flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features ``features`` produces for one image, found by a dry run.

    Computing the size keeps the classifier head correct for any input size, instead of a
    hard-coded ``nn.Linear(576, ...)`` that breaks silently when a layer changes.
    """
    was_training = features.training
    features.eval()
    with torch.no_grad():
        out = features(torch.zeros(1, in_channels, image_size, image_size))
    features.train(was_training)
    return out.flatten(1).shape[1]
