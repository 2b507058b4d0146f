"""Figures for ``mnistlab explain``: Grad-CAM beside saliency, filters, feature maps, gradient flow.

    >>> import numpy as np, tempfile, pathlib
    >>> fig = filters_figure(np.random.randn(8, 1, 3, 3), "features.0")
    >>> save(fig, pathlib.Path(tempfile.mkdtemp()) / "filters.png")

Every function returns a matplotlib ``Figure`` built without pyplot (no GUI backend, no global
state); :func:`save` writes it atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from mnistlab.data.conform import for_display
from mnistlab.fileio import write_with

HEAT = "inferno"  # perceptually uniform and readable in grey print, unlike "jet"


def save(fig: Figure, path: Path, dpi: int = 110) -> None:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def example_figure(image: np.ndarray, cams: Sequence[tuple[str, np.ndarray]], sal: np.ndarray,
                   title: str) -> Figure:
    """The input image, one Grad-CAM overlay per ``(label, map)`` on a shared scale, and the saliency map.

    The Grad-CAM maps share one colour scale, so a class with little evidence looks dim next to
    the predicted one instead of being stretched to full brightness.
    """
    n = 2 + len(cams)
    image = for_display(image)  # a colour image [3, H, W] is shown as RGB (the gray colour map then unused)
    fig = Figure(figsize=(2.5 * n + 1.2, 3.0), layout="constrained")
    axes = fig.subplots(1, n)
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("input", fontsize=9)
    top = max([float(c.max()) for _, c in cams] + [1e-12])
    for ax, (label, cam) in zip(axes[1:], cams):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(cam / top, cmap=HEAT, vmin=0, vmax=1, alpha=0.6)
        ax.set_title(f"Grad-CAM: {label}", fontsize=9)
    if cams:
        # The overlays are translucent; the colour bar shows the opaque scale they share.
        scale = ScalarMappable(Normalize(0, 1), cmap=HEAT)
        fig.colorbar(scale, ax=axes[len(cams)], fraction=0.05, pad=0.03, label="Grad-CAM / max")
    im = axes[-1].imshow(sal / max(float(sal.max()), 1e-12), cmap="hot", vmin=0, vmax=1)
    axes[-1].set_title("saliency |∂logit/∂input|", fontsize=9)
    fig.colorbar(im, ax=axes[-1], fraction=0.05, pad=0.03, label="saliency / max")
    for ax in axes:
        _off(ax)
    fig.suptitle(title, fontsize=10)
    return fig


def filters_figure(weights: np.ndarray, layer: str) -> Figure:
    """The first layer's kernels ``[out, in, k, k]`` as images (channel mean), blue < 0 < red."""
    kernels = weights.mean(1)
    n = len(kernels)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.1 * cols + 0.8, 1.15 * rows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    # One symmetric scale for all kernels, so their strengths can be compared.
    lim = float(np.abs(kernels).max()) or 1.0
    for i, ax in enumerate(axes):
        _off(ax)
        if i < n:
            im = ax.imshow(kernels[i], cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(str(i), fontsize=7, pad=2)
        else:
            ax.axis("off")
    fig.colorbar(im, ax=list(axes), fraction=0.025, pad=0.02, label="weight")
    k = weights.shape[-1]
    fig.suptitle(f"first-layer filters: {layer} ({n} × {k}×{k})", fontsize=10)
    return fig


def feature_maps_figure(image: np.ndarray, maps: Sequence[tuple[str, np.ndarray]], title: str,
                        per_stage: int = 8) -> Figure:
    """One row per stage: the ``per_stage`` most active channels of its output, each on its own scale."""
    image = for_display(image)
    fig = Figure(figsize=(1.35 * (per_stage + 1) + 0.3, 1.45 * len(maps) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(maps), per_stage + 1))
    for row, (name, fm) in zip(axes, maps):
        for ax in row:
            _off(ax)
        row[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        c, h, w = fm.shape
        row[0].set_ylabel(f"{name}\n{c}×{h}×{w}", fontsize=8)
        # The strongest channels are the ones this input actually uses.
        order = np.argsort(-fm.reshape(c, -1).mean(1))[:per_stage]
        for ax, ch in zip(row[1:], order):
            ax.imshow(fm[ch], cmap="viridis")
            ax.set_title(f"ch {ch}", fontsize=7, pad=2)
        for ax in row[1 + len(order):]:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return fig


def gradient_flow_figure(rows: Sequence[dict[str, Any]], vanishing: float, exploding: float,
                         title: str) -> Figure:
    """Left: each layer's mean gradient norm per epoch. Right: the last epoch's mean and range per layer."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    epochs = sorted({r["epoch"] for r in rows})
    by = {(r["layer"], r["epoch"]): r for r in rows}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(layers)))
    for color, layer in zip(colors, layers):
        ys = [by[(layer, e)]["mean_norm"] if (layer, e) in by else np.nan for e in epochs]
        left.plot(epochs, ys, marker="o", ms=4, color=color, label=layer)
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.set_ylabel("mean gradient L2 norm")
    left.set_xticks(epochs)
    left.legend(fontsize=7, ncol=2 if len(layers) > 8 else 1, loc="best")
    left.set_title("per-layer gradient norm by epoch", fontsize=9)

    last = [by.get((layer, epochs[-1])) for layer in layers]
    x = np.arange(len(layers))
    means = np.array([r["mean_norm"] for r in last])
    lo = means - np.array([r["min_norm"] for r in last])
    hi = np.array([r["max_norm"] for r in last]) - means
    bad = [r["status"] != "ok" for r in last]
    right.bar(x, means, color=["tab:red" if b else "tab:blue" for b in bad], alpha=0.8)
    right.errorbar(x, means, yerr=[lo, hi], fmt="none", ecolor="k", capsize=3, lw=1)
    right.set_yscale("log")
    right.set_xticks(x, layers, rotation=60, ha="right", fontsize=7)
    right.set_ylabel("gradient L2 norm")
    right.set_title(f"epoch {epochs[-1]}: mean (bar), min–max over batches; red outside {vanishing:g}..{exploding:g}",
                    fontsize=9)
    bottom, top = right.get_ylim()
    for level in (vanishing, exploding):
        if bottom <= level <= top:
            right.axhline(level, color="tab:red", ls="--", lw=1)
    fig.suptitle(title, fontsize=10)
    return fig
