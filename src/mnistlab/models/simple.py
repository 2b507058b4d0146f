"""Simple CNN: Conv → Pool → Conv → Pool → Conv → FC → FC (93,322 parameters on 28×28).

The layout of the classic Keras MNIST tutorial, without padding, so the parameter count matches
the seed exactly (320 + 18,496 + 36,928 + 36,928 + 650).
"""

from __future__ import annotations

from torch import nn

from mnistlab.models.blocks import FeaturesThenHead, flat_features
from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES, register


@register("simple", "Simple CNN: 3 conv + 2 dense layers, ~93K params")
class SimpleCNN(FeaturesThenHead):
    """Simple CNN: 3 conv + 2 dense layers, ~93K params."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES, image_size: int = IMAGE_SIZE,
                 width: int = 32, hidden: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3), nn.ReLU(inplace=True),
        )
        n_flat = flat_features(self.features, in_channels, image_size)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(n_flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )
