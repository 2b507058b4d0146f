"""The PyTorch explainer (captum): the framework table's ``explainer`` for ``torch`` runs.

    >>> import numpy as np
    >>> from mnistlab.explain.torch_backend import explainer
    >>> from mnistlab.runs import read_config
    >>> ex = explainer("runs/simple", read_config("runs/simple"))
    >>> ex.default_layer()
    'features'
    >>> ex.saliency(np.zeros((28, 28), np.uint8), target=7).shape
    (28, 28)

A thin adapter from :mod:`mnistlab.explain.gradcam` (tensors, batches) to the
:class:`~mnistlab.explain.backend.Explainer` methods (one uint8 image in, NumPy out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mnistlab.explain import gradcam as gc
from mnistlab.frameworks.pytorch import load_model, normalize_images
from mnistlab.maths.metrics import softmax
from mnistlab.models import IMAGE_SIZE, IN_CHANNELS
from mnistlab.models.selfattention import MultiHeadSelfAttention, ShowsAttention
from mnistlab.runconfig import DataFacts, RunConfig


class TorchExplainer:
    """Grad-CAM, saliency, filters and feature maps of a PyTorch run's model."""

    def __init__(self, model: torch.nn.Module, data: DataFacts):
        gc._captum()  # fail before any work when the extra is missing
        self.model, self.data = gc.explainable(model), data  # the run's normalisation and image shape
        size = data.image_size or IMAGE_SIZE
        self.image_shape = (data.in_channels or IN_CHANNELS, size, size)

    def _x(self, image: np.ndarray) -> torch.Tensor:
        return normalize_images(torch.as_tensor(image)[None], self.data)

    def default_layer(self) -> str:
        return gc.last_spatial_layer(self.model, self.image_shape)

    def check_layer(self, layer: str) -> None:
        gc.resolve_layer(self.model, layer, self.image_shape)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return softmax(self.model(self._x(image)).numpy())[0]

    def gradcam(self, image: np.ndarray, target: int, layer: str) -> np.ndarray:
        return gc.gradcam(self.model, self._x(image), target, layer)[0].numpy()

    def saliency(self, image: np.ndarray, target: int) -> np.ndarray:
        return gc.saliency(self.model, self._x(image), target)[0].numpy()

    def first_conv(self) -> tuple[str, np.ndarray]:
        name, weights = gc.first_conv(self.model)
        return name, weights.numpy()

    def feature_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        return [(name, m.numpy()) for name, m in gc.feature_maps(self.model, self._x(image))]

    def attention_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        if not isinstance(self.model, ShowsAttention):
            return []
        with torch.no_grad():
            weights = self.model.attention_weights(self._x(image))
        names = [name for name, m in self.model.named_modules() if isinstance(m, MultiHeadSelfAttention)]
        return [(name, w[0].numpy()) for name, w in zip(names, weights)]


def explainer(run_dir: str | Path, config: RunConfig) -> TorchExplainer:
    model, config = load_model(run_dir)
    return TorchExplainer(model, config.data)
