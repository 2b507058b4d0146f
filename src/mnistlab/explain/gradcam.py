"""Attributions for PyTorch models: Grad-CAM and saliency (captum), feature maps, first-layer filters.

    >>> import torch
    >>> from mnistlab.models import create_model
    >>> model = explainable(create_model("deeper"))
    >>> last_spatial_layer(model)
    'features'
    >>> gradcam(model, torch.randn(2, 1, 28, 28), [3, 5], "features").shape
    torch.Size([2, 28, 28])
    >>> [(name, tuple(fm.shape)) for name, fm in feature_maps(model, torch.zeros(1, 1, 28, 28))]
    [('features.stage1', (32, 14, 14)), ('features.stage2', (64, 7, 7)), ('features.stage3', (128, 3, 3))]

Grad-CAM uses captum's ``LayerGradCam`` (gradient-weighted channel sum at one layer, with the
ReLU of the original paper) and upsamples it with ``LayerAttribution.interpolate`` to the
input's size. Layers are found generically, so every registered architecture works without a
table of layer names: the default layer is the last module whose output is still a spatial map.
"""

from __future__ import annotations

import copy
import warnings
from typing import Sequence

import torch
from torch import nn

from mnistlab.errors import UserError


def _captum():
    try:
        with warnings.catch_warnings():
            # captum imports tqdm.auto, which warns in a notebook without ipywidgets; we draw no bar
            warnings.filterwarnings("ignore", message="IProgress not found")
            from captum import attr
    except ImportError:
        raise UserError("explain needs captum; install it with: pip install 'mnistlab[explain]'") from None
    return attr


def explainable(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with in-place activations turned off.

    captum hooks a layer's output and differentiates with respect to it; an in-place ReLU that
    runs afterwards would overwrite that very tensor and corrupt the gradient.
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    for p in model.parameters():
        p.requires_grad_(False)  # only input and activation gradients are needed
    return model


def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules() if name}


def output_shapes(model: nn.Module, image_shape: Sequence[int] = (1, 28, 28)) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, output shape without batch)`` of every named module, in the order they finish."""
    names, shapes, hooks = _names(model), [], []
    for module in model.modules():
        if id(module) in names:
            hooks.append(module.register_forward_hook(
                lambda m, _i, out: shapes.append((names[id(m)], tuple(out.shape[1:])))
                if isinstance(out, torch.Tensor) else None))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def spatial_layers(model: nn.Module, image_shape: Sequence[int] = (1, 28, 28)) -> list[str]:
    """Names of the modules whose output is a ``[C, H, W]`` map with H, W > 1."""
    return [name for name, s in output_shapes(model, image_shape) if len(s) == 3 and s[1] > 1 and s[2] > 1]


def last_spatial_layer(model: nn.Module, image_shape: Sequence[int] = (1, 28, 28)) -> str:
    """The Grad-CAM layer by default: the last module to produce a spatial map (finest semantics)."""
    layers = spatial_layers(model, image_shape)
    if not layers:
        raise UserError("this model has no layer with a spatial output; Grad-CAM needs one")
    return layers[-1]


def resolve_layer(model: nn.Module, name: str, image_shape: Sequence[int] = (1, 28, 28)) -> nn.Module:
    """The module called ``name`` (dotted, as in ``named_modules()``), checked to output a spatial map."""
    valid = spatial_layers(model, image_shape)
    try:
        module = model.get_submodule(name) if name else None
    except AttributeError:
        module = None
    if module is None or (name not in valid and _names(model).get(id(module)) not in valid):
        shown = ", ".join(valid[-8:])
        raise UserError(f"unknown or non-spatial layer {name!r}; choose one of: {shown}")
    return module


def gradcam(model: nn.Module, x: torch.Tensor, target: int | Sequence[int], layer: str,
            relu: bool = True) -> torch.Tensor:
    """Grad-CAM maps ``[N, H, W]`` at the input's size for class ``target`` (one per image or shared).

    ``relu=True`` keeps only evidence *for* the class, as in the Grad-CAM paper.
    """
    attr = _captum()
    module = resolve_layer(model, layer, x.shape[1:])
    target = target if isinstance(target, int) else list(target)
    with torch.enable_grad():
        cam = attr.LayerGradCam(model, module).attribute(x, target=target, relu_attributions=relu)
    cam = attr.LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam[:, 0]


def saliency(model: nn.Module, x: torch.Tensor, target: int | Sequence[int]) -> torch.Tensor:
    """|d logit_target / d input|, the largest over channels: ``[N, H, W]``."""
    attr = _captum()
    target = target if isinstance(target, int) else list(target)
    with torch.enable_grad():
        grads = attr.Saliency(model).attribute(x.clone().requires_grad_(True), target=target, abs=True)
    return grads.detach().amax(1)


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutional stages of ``model.features``, by name.

    Models built from named blocks (``stage1``, ``stem``, ...) use those; a flat layer list
    (the simple CNN) is cut into one stage per convolution, ending just before the next one.
    """
    names = _names(model)
    children = list(model.features.children())
    if any(len(list(c.children())) for c in children):
        return [(names[id(c)], c) for c in children]
    out, current = [], None
    for child in children:
        if isinstance(child, nn.Conv2d) and current is not None:
            out.append(current)
        current = (names[id(child)], child)
    return out + ([current] if current else [])


def feature_maps(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The output ``[C, H, W]`` of each stage for the single image ``x`` (``[1, C, H, W]``)."""
    captured: list[tuple[str, torch.Tensor]] = []
    hooks = [module.register_forward_hook(lambda _m, _i, out, n=name: captured.append((n, out[0].detach())))
             for name, module in stages(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


def first_conv(model: nn.Module) -> tuple[str, torch.Tensor]:
    """Name and weights ``[out, in, k, k]`` of the first convolution (the filters worth looking at)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.weight.detach()
    raise UserError("this model has no convolution; nothing to show as filters")
