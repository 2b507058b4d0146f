"""Deeper CNN: three conv stages with batch norm and dropout (~524K parameters).

Stage widths 32 → 64 → 128 with 1, 2 and 2 ConvBNAct layers. The first stage has a single
convolution because a 3×3 conv at full 28×28 resolution costs 16× more per parameter than at
7×7; putting capacity in the later stages trains about 1.4× faster on a CPU for the same
accuracy. Dropout 25% closes every conv stage and 50% sits before the last layer.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from mnistlab.models.blocks import ConvBNAct, FeaturesThenHead, flat_features
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


@register("deeper", "Deeper CNN: 5 conv layers with batch norm and dropout, ~524K params")
class DeeperCNN(FeaturesThenHead):
    """Deeper CNN: 5 conv layers with batch norm and dropout, ~524K params."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 width: int = 32, hidden: int = 212, dropout_conv: float = 0.25,
                 dropout_fc: float = 0.5):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(OrderedDict(
            stage1=nn.Sequential(ConvBNAct(in_channels, w1), nn.MaxPool2d(2), nn.Dropout(dropout_conv)),
            stage2=nn.Sequential(ConvBNAct(w1, w2), ConvBNAct(w2, w2), nn.MaxPool2d(2), nn.Dropout(dropout_conv)),
            stage3=nn.Sequential(ConvBNAct(w2, w3), ConvBNAct(w3, w3), nn.MaxPool2d(2), nn.Dropout(dropout_conv)),
        ))
        n_flat = flat_features(self.features, in_channels, image_size)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(n_flat, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout_fc), nn.Linear(hidden, num_classes),
        )
