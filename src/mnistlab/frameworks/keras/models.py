"""Keras 3 twins of ``mnistlab.models``: same layers, same parameter counts, channels-last input.

    >>> from mnistlab.frameworks.keras.models import create_keras_model
    >>> model = create_keras_model("simple")
    >>> model.count_params(), model.input_shape      # as many as mnistlab.models' simple has
    (93322, (None, 28, 28, 1))

Only built-in Keras layers are used (functional API), so a saved ``model.keras`` loads with
plain ``keras.saving.load_model`` without mnistlab installed. Layer names mirror the PyTorch
modules (``stage2_1_conv`` is ``stage2[1][0]``) so the two can be read side by side.

Where the frameworks' defaults differ, the PyTorch behaviour is copied so the comparison is
about the frameworks, not their defaults: batch norm momentum 0.1 (Keras says 0.9) and epsilon
1e-5; weights drawn as PyTorch draws them (uniform ±1/√fan_in for kernels and biases) instead of
Keras's Glorot-uniform kernels and zero biases.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from mnistlab.errors import UserError
from mnistlab.frameworks.keras.runtime import keras
from mnistlab.models import IMAGE_SIZE, IN_CHANNELS, NUM_CLASSES
from mnistlab.models.selfattention import sinusoidal_grid
from mnistlab.models.separable import BLOCKS as SEPARABLE_BLOCKS


def _kernel_init() -> Any:
    # PyTorch's kaiming_uniform(a=√5) is uniform ±1/√fan_in = VarianceScaling(1/3, fan_in, uniform).
    return keras.initializers.VarianceScaling(scale=1 / 3, mode="fan_in", distribution="uniform")


def _bias_init(fan_in: int) -> Any:
    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _conv(x, filters: int, size: int, name: str, *, stride: int = 1, padding: str = "valid", bias: bool = True):
    fan_in = x.shape[-1] * size * size
    return keras.layers.Conv2D(filters, size, strides=stride, padding=padding, use_bias=bias,
                               kernel_initializer=_kernel_init(),
                               bias_initializer=_bias_init(fan_in) if bias else "zeros", name=name)(x)


def _dense(x, units: int, name: str):
    return keras.layers.Dense(units, kernel_initializer=_kernel_init(), bias_initializer=_bias_init(x.shape[-1]),
                              name=name)(x)


def _bn(x, name: str):
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)


def conv_bn_act(x, filters: int, name: str, *, stride: int = 1, act: bool = True):
    """``blocks.ConvBNAct``: 3×3 conv without bias → BatchNorm → ReLU.

    PyTorch's padding=1 and Keras's 'same' give the same output sizes here (28→28, 14→7, 7→4);
    with stride 2 on an even side Keras pads only after, PyTorch on both sides.
    """
    x = _conv(x, filters, 3, f"{name}_conv", stride=stride, padding="same", bias=False)
    x = _bn(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x) if act else x


def residual_block(x, filters: int, name: str, *, stride: int = 1):
    """``blocks.ResidualBlock``: two ConvBN layers plus a skip (1×1 projection + BN when the shape changes)."""
    y = conv_bn_act(x, filters, f"{name}_conv1", stride=stride)
    y = conv_bn_act(y, filters, f"{name}_conv2", act=False)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, f"{name}_shortcut_conv", stride=stride, bias=False)
        shortcut = _bn(shortcut, f"{name}_shortcut_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))


def simple(inputs, num_classes: int, width: int = 32, hidden: int = 64):
    """``models.simple.SimpleCNN``: 3 unpadded convs + 2 dense layers."""
    x = _conv(inputs, width, 3, "features_0_conv")
    x = keras.layers.ReLU(name="features_1_relu")(x)
    x = keras.layers.MaxPooling2D(2, name="features_2_pool")(x)
    x = _conv(x, 2 * width, 3, "features_3_conv")
    x = keras.layers.ReLU(name="features_4_relu")(x)
    x = keras.layers.MaxPooling2D(2, name="features_5_pool")(x)
    x = _conv(x, 2 * width, 3, "features_6_conv")
    x = keras.layers.ReLU(name="features_7_relu")(x)
    x = keras.layers.Flatten(name="head_0_flatten")(x)
    x = keras.layers.ReLU(name="head_2_relu")(_dense(x, hidden, "head_1_dense"))
    return _dense(x, num_classes, "head_3_dense")


def deeper(inputs, num_classes: int, width: int = 32, hidden: int = 212, dropout_conv: float = 0.25,
           dropout_fc: float = 0.5):
    """``models.deeper.DeeperCNN``: stages of 1, 2, 2 ConvBNAct layers, each closed by pool + dropout."""
    x = inputs
    for stage, (filters, n_convs) in enumerate([(width, 1), (2 * width, 2), (4 * width, 2)], start=1):
        for i in range(n_convs):
            x = conv_bn_act(x, filters, f"stage{stage}_{i}")
        x = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        x = keras.layers.Dropout(dropout_conv, name=f"stage{stage}_dropout")(x)
    x = keras.layers.Flatten(name="head_flatten")(x)
    x = keras.layers.ReLU(name="head_relu")(_dense(x, hidden, "head_dense1"))
    x = keras.layers.Dropout(dropout_fc, name="head_dropout")(x)
    return _dense(x, num_classes, "head_dense2")


def resnet(inputs, num_classes: int, widths: tuple[int, int, int] = (32, 64, 120)):
    """``models.resnet.ResNetCNN``: stem + pool, residual stages (strides 1, 2, 2), global average pool."""
    w1, w2, w3 = widths
    x = conv_bn_act(inputs, w1, "stem")
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
    x = residual_block(x, w1, "stage1")
    x = residual_block(x, w2, "stage2", stride=2)
    x = residual_block(x, w3, "stage3", stride=2)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return _dense(x, num_classes, "head_dense")


def separable_block(x, filters: int, name: str, *, stride: int = 1):
    """``separable.SeparableBlock``: depthwise 3×3 → BN → pointwise 1×1 → BN → ReLU, no biases."""
    # PyTorch's fan-in of a depthwise 3×3 kernel is 9 (one input channel per filter); Keras's
    # VarianceScaling would count 9 × channels, so the PyTorch bound is given directly.
    x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                     depthwise_initializer=keras.initializers.RandomUniform(-1 / 3, 1 / 3),
                                     name=f"{name}_depthwise")(x)
    x = _conv(_bn(x, f"{name}_dw_bn"), filters, 1, f"{name}_pointwise", bias=False)
    return keras.layers.ReLU(name=f"{name}_pw_relu")(_bn(x, f"{name}_pw_bn"))


def separable(inputs, num_classes: int, width: int = 20):
    """``models.separable.SeparableCNN``: a strided stem, four separable blocks, a flattened linear head."""
    x = conv_bn_act(inputs, width, "stem", stride=2)
    for i, (mult, stride) in enumerate(SEPARABLE_BLOCKS, start=1):
        x = separable_block(x, mult * width, f"block{i}", stride=stride)
    return _dense(keras.layers.Flatten(name="head_flatten")(x), num_classes, "head_dense")


def _bn_relu(x, name: str):
    return keras.layers.ReLU(name=f"{name}_relu")(_bn(x, f"{name}_bn"))


def dense_block(x, growth: int, layers: int, name: str):
    """``dense.dense_block``: each layer appends BN → ReLU → 3×3 conv (``growth`` channels) to its input."""
    for i in range(layers):
        y = _conv(_bn_relu(x, f"{name}_{i}"), growth, 3, f"{name}_{i}_conv", padding="same", bias=False)
        x = keras.layers.Concatenate(name=f"{name}_{i}_concat")([x, y])
    return x


def dense(inputs, num_classes: int, stem: int = 24, growth1: int = 12, layers1: int = 3, mid: int = 48,
          growth2: int = 16, layers2: int = 4):
    """``models.dense.DenseCNN``: stem + pool, dense block, transition (pool, then 1×1 conv), dense block."""
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(conv_bn_act(inputs, stem, "stem"))
    x = dense_block(x, growth1, layers1, "block1")
    x = keras.layers.AveragePooling2D(2, name="trans1_pool")(_bn_relu(x, "trans1"))
    x = _conv(x, mid, 1, "trans1_conv", bias=False)
    x = _bn_relu(dense_block(x, growth2, layers2, "block2"), "norm")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return _dense(x, num_classes, "head_dense")


def squeeze_excite(x, name: str, reduction: int = 4):
    """``attention.SqueezeExcite``: channels rescaled by a sigmoid of an MLP on their spatial means."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = keras.layers.ReLU(name=f"{name}_relu")(_conv(s, max(channels // reduction, 8), 1, f"{name}_reduce"))
    s = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(_conv(s, channels, 1, f"{name}_expand"))
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


def attention(inputs, num_classes: int, width: int = 24):
    """``models.attention.AttentionCNN``: stem + pool, three conv stages each closed by squeeze-and-excitation."""
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(conv_bn_act(inputs, width, "stem"))
    for stage, (filters, convs, stride) in enumerate([(width, 1, 1), (2 * width, 2, 2), (4 * width, 1, 2)], start=1):
        for i in range(convs):
            x = conv_bn_act(x, filters, f"stage{stage}_{i}", stride=stride if i == 0 else 1)
        x = squeeze_excite(x, f"stage{stage}_se")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return _dense(x, num_classes, "head_dense")


def transformer_block(x, heads: int, name: str, mlp_ratio: int = 2):
    """``selfattention.TransformerBlock`` on tokens ``[N, T, dim]``: pre-norm attention and MLP, each residual.

    The attention layer is called with ``return_attention_scores=True`` so that its second
    output, the weights ``[N, heads, T, T]``, can be read from a loaded model (the explainer does).
    """
    dim = x.shape[-1]
    # Every kernel of PyTorch's attention and of the MLP's first layer has fan-in dim; Keras would
    # count the heads' axis of the (dim, heads, dim/heads) kernels into fan-in, so the bound is given.
    bound = keras.initializers.RandomUniform(-1 / math.sqrt(dim), 1 / math.sqrt(dim))
    attention = keras.layers.MultiHeadAttention(heads, dim // heads, kernel_initializer=bound,
                                                bias_initializer=bound, name=f"{name}_attn")
    y = _layer_norm(x, f"{name}_norm1")
    y, _ = attention(y, y, return_attention_scores=True)
    for weight in attention.output_dense.weights:  # both residual branches start at zero, as in PyTorch
        weight.assign(keras.ops.zeros(weight.shape))
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.Activation("gelu", name=f"{name}_mlp_act")(_dense(_layer_norm(x, f"{name}_norm2"),
                                                                      mlp_ratio * dim, f"{name}_mlp_fc1"))
    y = keras.layers.Dense(dim, kernel_initializer="zeros", bias_initializer="zeros", name=f"{name}_mlp_fc2")(y)
    return keras.layers.Add(name=f"{name}_add2")([x, y])


def _layer_norm(x, name: str):
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)(x)  # PyTorch's epsilon (Keras says 1e-3)


def selfattention(inputs, num_classes: int, width: int = 64, heads: int = 4, depth: int = 2, mlp_ratio: int = 2):
    """``models.selfattention.SelfAttentionCNN``: four convs (two pooled), sinusoidal positions, transformer blocks."""
    x = keras.layers.MaxPooling2D(2, name="stem1_pool")(conv_bn_act(inputs, width // 2, "stem1"))
    x = keras.layers.MaxPooling2D(2, name="stem2_pool")(conv_bn_act(x, width, "stem2"))
    x = conv_bn_act(conv_bn_act(x, width, "stem3_0"), width, "stem3_1")
    h, w = x.shape[1], x.shape[2]
    # The fixed encoding is a constant of the graph (saved in model.keras), not a layer with weights.
    x = keras.ops.add(x, sinusoidal_grid(width, h, w).permute(1, 2, 0)[None].numpy())
    x = keras.layers.Reshape((h * w, width), name="attention_tokens")(x)  # row-major, as PyTorch's flatten
    for i in range(depth):
        x = transformer_block(x, heads, f"attention_block{i}", mlp_ratio)
    x = keras.layers.Reshape((h, w, width), name="attention_grid")(_layer_norm(x, "attention_norm"))
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    return _dense(x, num_classes, "head_dense")


KERAS_MODELS: dict[str, Callable[..., Any]] = {"simple": simple, "deeper": deeper, "resnet": resnet,
                                               "separable": separable, "dense": dense, "attention": attention,
                                               "selfattention": selfattention}
# Every model in ``mnistlab.models.list_models()`` has a twin above or a one-line reason here
# (the registry-wide tests check both, and that twins have exactly the PyTorch parameter count).
NO_TWIN: dict[str, str] = {
    "speedrun": "a CPU time-to-99% recipe for the PyTorch loop; its timings would not carry to Keras",
}


def create_keras_model(name: str, *, in_channels: int = IN_CHANNELS, num_classes: int = NUM_CLASSES,
                       image_size: int = IMAGE_SIZE, **kwargs: Any) -> "keras.Model":
    """The Keras twin of ``mnistlab.models.create_model(name, ...)``; input ``[N, H, W, C]``, output logits."""
    if name in NO_TWIN:
        raise UserError(f"model {name!r} has no Keras twin: {NO_TWIN[name]}")
    if name not in KERAS_MODELS:
        raise UserError(f"no Keras twin of model {name!r}; choose one of: {', '.join(sorted(KERAS_MODELS))}")
    inputs = keras.Input((image_size, image_size, in_channels), name="image")
    return keras.Model(inputs, KERAS_MODELS[name](inputs, num_classes, **kwargs), name=name)


def trainable_parameters(model: "keras.Model") -> int:
    """Trainable weights only, as ``count_parameters`` counts them for PyTorch (BN running stats excluded)."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
