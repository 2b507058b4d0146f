"""Multiply-adds per image: what a model costs to run, next to what it costs to store.

    >>> from mnistlab.models import count_macs, create_model
    >>> count_macs(create_model("simple"))
    2794240

Counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
blank image. It counts the matrix products (convolutions, linear layers, attention) and reports
FLOPs as 2 per multiply-add, so MACs are half its total. Batch norm, activations, pooling and
element-wise products are not counted, as in the MobileNet and ResNet papers; on these models
they add a few percent.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnistlab.models.registry import IMAGE_SIZE, IN_CHANNELS


def count_macs(model: nn.Module, in_channels: int = IN_CHANNELS, image_size: int = IMAGE_SIZE) -> int:
    """Multiply-accumulate operations of one forward pass on one ``in_channels×image_size²`` image."""
    was_training = model.training
    model.eval()  # batch norm must not update its running statistics on the blank image
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_channels, image_size, image_size))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
