"""One look for every figure: matplotlib's object API with the Agg canvas, never pyplot.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.png"
    >>> with figure(path, 4, 3) as fig:
    ...     ax = fig.add_subplot()
    ...     _ = ax.plot([0, 1], [0, 1])
    >>> path.stat().st_size > 0
    True

Figures are created as :class:`matplotlib.figure.Figure` objects (no global figure manager, no
window can open) and written atomically. Without ``bbox_inches="tight"`` a saved PNG is exactly
``width × height × DPI`` pixels, so callers (and tests) know its size in advance.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mnistlab.fileio import write_with

DPI = 100
# Okabe–Ito: distinguishable with every common colour-vision deficiency.
BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#7f7f7f")
PALETTE = [BLUE, ORANGE, GREEN, RED, PURPLE, SKY, YELLOW, GREY]
STYLE = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "legend.fontsize": 11,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.cmap": "Blues",
}


@contextlib.contextmanager
def figure(path: str | Path, width: float = 8.0, height: float = 4.5, title: str | None = None,
           margins: dict[str, float] | None = None) -> Iterator[Figure]:
    """Yield a styled figure of ``width × height`` inches; on exit write it to ``path`` as PNG.

    Laid out by matplotlib's constrained layout, or, given ``margins`` (``subplots_adjust``'s
    arguments), placed by hand: a grid of many images laid out by constraints takes seconds to draw.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), dpi=DPI, layout=None if margins else "constrained")
        if margins:
            fig.subplots_adjust(**margins)
        FigureCanvasAgg(fig)
        if title:
            fig.suptitle(title, fontsize=14, fontweight="bold")
        yield fig
        write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def pixel_size(width: float, height: float) -> tuple[int, int]:
    """The (width, height) in pixels of a PNG written by :func:`figure` with these inches."""
    return round(width * DPI), round(height * DPI)
