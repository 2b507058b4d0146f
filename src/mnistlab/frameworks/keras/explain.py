"""The Keras explainer (``tf.GradientTape``): the framework table's ``explainer`` for ``keras`` runs.

    >>> import numpy as np
    >>> from mnistlab.frameworks.keras.explain import KerasExplainer
    >>> from mnistlab.frameworks.keras.models import create_keras_model
    >>> from mnistlab.runconfig import DataFacts
    >>> mnist = DataFacts(class_names=tuple("0123456789"), num_classes=10, mean=0.1307, std=0.3081)
    >>> ex = KerasExplainer(create_keras_model("simple"), mnist)    # any Keras twin, trained or not
    >>> ex.default_layer(), ex.gradcam(np.zeros((28, 28), np.uint8), 7, "features_7_relu").shape
    ('features_7_relu', (28, 28))

For a Keras run, ``explainer(run_dir, config)`` wraps its saved ``model.keras`` in the same way.

The same maths as captum's ``LayerGradCam`` and ``Saliency`` on the PyTorch side: Grad-CAM is
the ReLU of the channel sum of activations weighted by their spatially averaged gradients,
resized bilinearly (half-pixel centres, as ``F.interpolate(align_corners=False)``) to the
input's size. Layer names are the Keras twin's (``features_3_conv`` for PyTorch's
``features.3``), since ``--layer`` picks from this model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.errors import UserError
from mnistlab.frameworks.keras.runtime import keras, load_keras_model, tf, to_nhwc
from mnistlab.runconfig import DataFacts, RunConfig


def _shape(layer: Any) -> tuple | None:
    """A layer's output shape; None for a layer with several outputs (attention with its weights)."""
    output = getattr(layer, "output", None)
    return None if output is None or isinstance(output, (list, tuple)) else tuple(output.shape)


def _is_spatial(layer: Any) -> bool:
    shape = _shape(layer)
    return bool(shape) and len(shape) == 4 and shape[1] > 1 and shape[2] > 1


def _attention_layers(model: "keras.Model") -> list[Any]:
    """Attention layers whose call also returned the weights (the twins' ``return_attention_scores=True``)."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention)
            and isinstance(layer.output, (list, tuple)) and len(layer.output) == 2]


def _stages(model: "keras.Model") -> list[tuple[str, Any]]:
    """``(name, layer)`` closing each convolutional stage, like ``gradcam.stages`` for PyTorch.

    The twins name their layers after the PyTorch modules: a flat ``features_<i>_<kind>`` list
    (the simple CNN) has one stage per convolution, named by its last layer; named blocks
    (``stem_...``, ``stage2_...``) are one stage each, named by the block.
    """
    groups: list[list[Any]] = []  # [stage name, last layer]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or len(_shape(layer) or ()) != 4:
            continue
        if layer.name.startswith("features_"):
            if isinstance(layer, keras.layers.Conv2D) or not groups:
                groups.append([layer.name, layer])
            groups[-1] = [layer.name, layer]
        else:
            block = layer.name.split("_")[0]
            if not groups or groups[-1][0] != block:
                groups.append([block, layer])
            groups[-1][1] = layer
    return [(name, layer) for name, layer in groups]


class KerasExplainer:
    """Grad-CAM, saliency, filters and feature maps of a Keras run's model."""

    def __init__(self, model: "keras.Model", data: DataFacts):
        self.model, self.data = model, data  # the run's normalisation

    def _x(self, image: np.ndarray) -> Any:
        return tf.constant(to_nhwc(np.asarray(image)[None], self.data))

    def _spatial(self) -> list[str]:
        return [layer.name for layer in self.model.layers if _is_spatial(layer)]

    def default_layer(self) -> str:
        layers = self._spatial()
        if not layers:
            raise UserError("this model has no layer with a spatial output; Grad-CAM needs one")
        return layers[-1]

    def check_layer(self, layer: str) -> None:
        valid = self._spatial()
        if layer not in valid:
            raise UserError(f"unknown or non-spatial layer {layer!r}; choose one of: {', '.join(valid[-8:])}")

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        return tf.nn.softmax(self.model(self._x(image), training=False)).numpy()[0]

    def gradcam(self, image: np.ndarray, target: int, layer: str) -> np.ndarray:
        self.check_layer(layer)
        probe = keras.Model(self.model.inputs, [self.model.get_layer(layer).output, self.model.outputs[0]])
        x = self._x(image)
        with tf.GradientTape() as tape:
            acts, logits = probe(x, training=False)
            score = logits[:, target]
        weights = tf.reduce_mean(tape.gradient(score, acts), axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1, keepdims=True))
        return tf.image.resize(cam, x.shape[1:3], method="bilinear")[0, ..., 0].numpy()

    def saliency(self, image: np.ndarray, target: int) -> np.ndarray:
        x = self._x(image)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = self.model(x, training=False)[:, target]
        return tf.reduce_max(tf.abs(tape.gradient(score, x)), axis=-1)[0].numpy()

    def first_conv(self) -> tuple[str, np.ndarray]:
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                return layer.name, np.transpose(layer.kernel.numpy(), (3, 2, 0, 1))  # HWIO → OIHW
        raise UserError("this model has no convolution; nothing to show as filters")

    def feature_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        stages = _stages(self.model)
        probe = keras.Model(self.model.inputs, [layer.output for _, layer in stages])
        outs = probe(self._x(image), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [(name, np.transpose(out.numpy()[0], (2, 0, 1))) for (name, _), out in zip(stages, outs)]

    def attention_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        layers = _attention_layers(self.model)
        if not layers:
            return []
        probe = keras.Model(self.model.inputs, [layer.output[1] for layer in layers])
        outs = probe(self._x(image), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return [(layer.name, out.numpy()[0]) for layer, out in zip(layers, outs)]


def explainer(run_dir: str | Path, config: RunConfig) -> KerasExplainer:
    return KerasExplainer(load_keras_model(run_dir), config.data)
