"""What a framework must answer so that ``mnistlab explain`` can draw its figures.

    >>> import numpy as np
    >>> from mnistlab import frameworks
    >>> from mnistlab.runs import read_config
    >>> config = read_config("runs/simple")
    >>> ex = frameworks.get(config.framework).explainer_for("runs/simple", config)
    >>> image = np.zeros((28, 28), np.uint8)
    >>> image[6:22, 12:16] = 255                        # a white stroke on black, as in MNIST
    >>> ex.gradcam(image, target=1, layer=ex.default_layer()).shape
    (28, 28)

Each framework's entry in :mod:`mnistlab.frameworks` names a module with
``explainer(run_dir, config)`` returning an object with these methods
(:mod:`mnistlab.explain.torch_backend` with captum, :mod:`mnistlab.frameworks.keras.explain` with
``tf.GradientTape``). Images go in as one uint8 ``[28, 28]`` array; everything comes out as
NumPy, so :mod:`mnistlab.explain.run` draws the same pictures, under the same file names, for
every framework.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Explainer(Protocol):
    """Attributions of one run's model; layer names are the framework's own."""

    def default_layer(self) -> str:
        """The Grad-CAM layer by default: the last layer whose output is still a spatial map."""

    def check_layer(self, layer: str) -> None:
        """Raise a one-line ``UserError`` naming valid layers when ``layer`` is unknown or not spatial."""

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities ``[classes]`` of one image."""

    def gradcam(self, image: np.ndarray, target: int, layer: str) -> np.ndarray:
        """Grad-CAM ``[H, W]`` (ReLU of the gradient-weighted channel sum, upsampled bilinearly)."""

    def saliency(self, image: np.ndarray, target: int) -> np.ndarray:
        """``|d logit_target / d input|`` ``[H, W]``, the largest over input channels."""

    def first_conv(self) -> tuple[str, np.ndarray]:
        """Name and kernels ``[out, in, k, k]`` of the first convolution."""

    def feature_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(stage name, output [C, H, W])`` of each convolutional stage, in order."""

    def attention_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(layer name, weights [heads, queries, keys])`` of each self-attention layer over a square grid of
        positions (row-major); empty for a model without one."""
