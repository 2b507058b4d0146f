"""What the Python API hands back: test metrics and predictions, each with a small HTML table for notebooks.

    >>> import numpy as np
    >>> from mnistlab.api.results import Metrics, Prediction
    >>> m = Metrics({"accuracy": 0.99, "nll": 0.03, "per_class": []})
    >>> m.accuracy, m["accuracy"], "nll" in m
    (0.99, 0.99, True)
    >>> p = Prediction(np.array([[0.1, 0.9], [0.8, 0.2]]), ("cat", "dog"))
    >>> p.labels.tolist(), p.classes, p.confidence.tolist()
    ([1, 0], ['dog', 'cat'], [0.9, 0.8])

Both are plain data: a :class:`Metrics` holds exactly the keys of ``metrics.json``; a
:class:`Prediction` holds the probabilities and the run's class names.
"""

from __future__ import annotations

import functools
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

MAX_HTML_ROWS = 20  # a notebook table longer than this says how many rows it left out


def html_table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, caption: str = "") -> str:
    """A small, escaped HTML table (what ``_repr_html_`` shows in Jupyter)."""
    def cell(value: Any, tag: str) -> str:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        return f"<{tag} style='text-align:left'>{html.escape(text)}</{tag}>"

    parts = ["<table>"]
    if caption:
        parts.append(f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>")
    if header:
        parts.append("<tr>" + "".join(cell(h, "th") for h in header) + "</tr>")
    for row in rows[:MAX_HTML_ROWS]:
        parts.append("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>")
    if len(rows) > MAX_HTML_ROWS:
        parts.append(f"<tr><td colspan='{len(rows[0])}'>… {len(rows) - MAX_HTML_ROWS} more</td></tr>")
    parts.append("</table>")
    return "".join(parts)


class Metrics(Mapping):
    """A run's test metrics: ``m["accuracy"]`` and ``m.accuracy`` alike, the keys of ``metrics.json``."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"no metric {name!r}; the metrics are: {', '.join(self._values)}") from None

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._values]

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._values.items() if isinstance(v, (int, float, str)) or v is None}
        return f"Metrics({shown})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def _repr_html_(self) -> str:
        scalars = [(k, v) for k, v in self._values.items()
                   if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        out = html_table(scalars, ["metric", "value"], "test metrics")
        per_class = self._values.get("per_class") or []
        if per_class:
            rows = [(c["name"], c["precision"], c["recall"], c["f1"], c["support"]) for c in per_class]
            out += html_table(rows, ["class", "precision", "recall", "f1", "support"], "per class")
        return out


@dataclass(frozen=True)
class Prediction:
    """Class probabilities ``[N, classes]`` of N images, with the run's class names.

    ``labels``: the predicted class index of each image; ``classes``: its name; ``confidence``: its
    probability; ``notes``: what preprocessing said about each picture (an empty list when nothing).
    """

    probabilities: np.ndarray
    class_names: tuple[str, ...]
    notes: tuple[tuple[str, ...], ...] = ()

    @property
    def labels(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def classes(self) -> list[str]:
        return [self.class_names[k] for k in self.labels]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    def __len__(self) -> int:
        return len(self.probabilities)

    def __repr__(self) -> str:
        head = ", ".join(f"{c} ({p:.3f})" for c, p in zip(self.classes[:5], self.confidence[:5]))
        more = f", … {len(self) - 5} more" if len(self) > 5 else ""
        return f"Prediction({len(self)} images: {head}{more})"

    def _repr_html_(self) -> str:
        top2 = np.argsort(-self.probabilities, axis=1)[:, :2]
        rows = [(i, self.class_names[a], float(self.probabilities[i, a]), self.class_names[b],
                 float(self.probabilities[i, b])) for i, (a, b) in enumerate(top2)]
        return html_table(rows, ["image", "class", "probability", "runner-up", "probability"],
                          f"{len(self)} predictions")


@functools.lru_cache(maxsize=1)
def _inline_figure_class() -> type:
    """A matplotlib ``Figure`` (no pyplot, no GUI) that Jupyter shows inline through its PNG; built on
    first use, so matplotlib is imported only when a figure is asked for."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            FigureCanvasAgg(self)

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=self.dpi)
            return buf.getvalue()

    return InlineFigure


def new_figure(**kwargs: Any) -> Any:
    """A ``matplotlib.figure.Figure`` (``figsize``, ``dpi``, ...) that displays inline in Jupyter."""
    return _inline_figure_class()(**kwargs)


def figure_from_png(path: Any, dpi: int = 100) -> Any:
    """A :func:`new_figure` showing a saved plot at its own size."""
    from matplotlib.image import imread

    image = imread(path)
    fig = new_figure(figsize=(image.shape[1] / dpi, image.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()
    return fig


@dataclass(frozen=True)
class Explanation:
    """Attribution maps of N images: ``maps[i]`` ``[H, W]`` for class ``targets[i]``; ``.figure`` draws them."""

    images: np.ndarray
    maps: Sequence[np.ndarray]
    targets: Sequence[int]
    probabilities: Sequence[np.ndarray]
    class_names: tuple[str, ...]
    method: str
    layer: str | None = None

    def __repr__(self) -> str:
        where = f" at {self.layer}" if self.layer else ""
        shown = ", ".join(f"{self.class_names[k]} (p={p[k]:.3f})" for k, p in zip(self.targets[:5], self.probabilities))
        more = f", … {len(self.targets) - 5} more" if len(self.targets) > 5 else ""
        return f"Explanation({self.method}{where} of {len(self.images)} images for {shown}{more})"

    @property
    def figure(self) -> Any:
        """Each image, and its map over it, side by side: a matplotlib figure that displays inline."""
        n = len(self.images)
        fig = new_figure(figsize=(2.6 * n, 2.9), dpi=100)
        for i, (image, cam, k, p) in enumerate(zip(self.images, self.maps, self.targets, self.probabilities)):
            ax = fig.add_subplot(1, n, i + 1)
            ax.imshow(image, cmap="gray")
            peak = float(np.max(cam)) or 1.0
            ax.imshow(np.asarray(cam) / peak, cmap="jet", alpha=0.45, extent=(-0.5, image.shape[1] - 0.5,
                                                                            image.shape[0] - 0.5, -0.5))
            ax.set_title(f"{self.class_names[k]} (p={p[k]:.2f})", fontsize=9)
            ax.set_axis_off()
        where = f" at {self.layer}" if self.layer else ""
        fig.suptitle(f"{self.method}{where}", fontsize=10)
        return fig

    def _repr_png_(self) -> bytes:
        return self.figure._repr_png_()


class Comparison:
    """``mnistlab compare``'s result: a row per run, a group per model (mean ± std), the files written."""

    def __init__(self, result: Mapping[str, Any], files: Mapping[str, str]):
        self.runs = list(result["runs"])
        self.groups = list(result["groups"])
        self.files = dict(files)
        self._result = dict(result)

    def to_dict(self) -> dict[str, Any]:
        return {**self._result, "files": self.files}

    def __repr__(self) -> str:
        return f"Comparison({len(self.runs)} runs in {len(self.groups)} groups)"

    def _repr_html_(self) -> str:
        from mnistlab.analysis.compare import COLUMNS, table_rows

        return html_table(table_rows(self._result), COLUMNS, "comparison (test split)")
