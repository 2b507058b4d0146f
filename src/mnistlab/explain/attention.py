"""Where a self-attention model looks: attention maps of chosen query positions, per head, over the digit.

    >>> import numpy as np
    >>> image = np.zeros((28, 28), np.uint8)
    >>> image[4:24, 13:15] = 255                       # a vertical stroke: a "1"
    >>> query_positions(image, grid=7)                 # the centre, then the ink farthest from its centre
    [('centre', 3, 3), ('stroke end', 1, 3)]
    >>> weights = np.full((4, 49, 49), 1 / 49)        # 4 heads, 7×7 positions, uniform attention
    >>> fig = attention_figure(image, [("block 0", weights)], query_positions(image, 7), "a 1")

A self-attention layer gives, for every query position of its grid, a weight for every key
position (summing to 1). One map per head and query is the row of those weights laid back onto
the grid and drawn over the input: a head that follows the stroke, one that looks at the
background, one that stays put. :func:`draw` writes one figure per example image
(``attention_<name>.png``) for any framework whose explainer returns ``attention_maps``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mnistlab.explain.backend import Explainer
from mnistlab.explain.visualize import HEAT, save

Query = tuple[str, int, int]  # (what it is, grid row, grid column)


def query_positions(image: np.ndarray, grid: int) -> list[Query]:
    """The grid's centre, and the grid cell of the stroke end: the inked pixel farthest from the ink's centroid.

    "Ink" is every pixel at least half as bright as the brightest, so faint anti-aliasing at the
    edge of a stroke does not count as its end. A blank image has only the centre.
    """
    centre = ("centre", grid // 2, grid // 2)
    img = np.asarray(image, dtype=np.float64)
    if img.max() <= 0:
        return [centre]
    ys, xs = np.nonzero(img >= img.max() / 2)
    weights = img[ys, xs]
    cy, cx = np.average(ys, weights=weights), np.average(xs, weights=weights)
    far = int(np.argmax((ys - cy) ** 2 + (xs - cx) ** 2))
    h, w = img.shape
    end = ("stroke end", int(ys[far] * grid // h), int(xs[far] * grid // w))
    return [centre] if end[1:] == centre[1:] else [centre, end]


def attention_figure(image: np.ndarray, maps: Sequence[tuple[str, np.ndarray]], queries: Sequence[Query],
                     title: str) -> Figure:
    """One row per (layer, query): the input with the query cell boxed, then each head's weights over the grid.

    A row shares one colour scale, so heads can be compared; uniform attention would be
    ``1 / positions`` everywhere.
    """
    heads = maps[0][1].shape[0]
    rows = [(layer, weights, q) for layer, weights in maps for q in queries]
    fig = Figure(figsize=(1.9 * (heads + 1) + 0.8, 1.95 * len(rows) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), heads + 1))
    h, w = image.shape
    for row, (layer, weights, (what, qr, qc)) in zip(axes, rows):
        grid = math.isqrt(weights.shape[-1])
        cell_h, cell_w = h / grid, w / grid
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # the grid stretched over the image's pixels
        maps_q = weights[:, qr * grid + qc].reshape(heads, grid, grid)
        top = max(float(maps_q.max()), 1e-12)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.add_patch(Rectangle((qc * cell_w - 0.5, qr * cell_h - 0.5), cell_w, cell_h, fill=False,
                                   edgecolor="cyan", lw=1.5))
        row[0].set_ylabel(f"{layer}\nquery: {what} ({qr}, {qc})", fontsize=7)
        for head, ax in enumerate(row[1:]):
            ax.imshow(maps_q[head], cmap=HEAT, vmin=0, vmax=top, alpha=0.65, extent=extent, interpolation="nearest")
            ax.set_title(f"head {head}", fontsize=8, pad=2)
        fig.colorbar(ScalarMappable(Normalize(0, top), cmap=HEAT), ax=row[-1], fraction=0.05, pad=0.03,
                     label="weight")
    fig.suptitle(title, fontsize=10)
    return fig


def draw(explainer: Explainer, examples: Sequence[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """An ``attention_<name>.png`` per example, with its index entries; none for a model without attention."""
    entries = []
    for ex in examples:
        maps = explainer.attention_maps(ex["image"])
        if not maps:
            return []
        grid = math.isqrt(maps[0][1].shape[-1])
        queries = query_positions(ex["image"], grid)
        file = f"attention_{ex['name']}.png"
        title = f"self-attention of {ex['note']}: where each head looks from each query (boxed)"
        save(attention_figure(ex["image"], maps, queries, title), out / file)
        entries.append({"file": file, "kind": "attention", "caption": title, "grid": grid,
                        "heads": int(maps[0][1].shape[0]), "layers": [name for name, _ in maps],
                        "queries": [{"name": q, "row": r, "col": c} for q, r, c in queries]})
    return entries
