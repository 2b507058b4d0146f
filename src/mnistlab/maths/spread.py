"""Mean ± spread over seeds: one convention for every table that reports several runs.

    >>> from mnistlab.maths.spread import spread, mean_std_text
    >>> s = spread([0.97, 0.98, 0.99])
    >>> round(s["mean"], 4), round(s["std"], 4), s["min"], s["max"], s["n"]
    (0.98, 0.01, 0.97, 0.99, 3)
    >>> spread([0.98])
    {'mean': 0.98, 'std': None, 'min': 0.98, 'max': 0.98, 'n': 1}
    >>> mean_std_text(s["mean"], s["std"])
    '0.9800 ± 0.0100'
    >>> mean_std_text(0.98, None, scale=100, digits=2)
    '98.00 ± —'

The standard deviation is the sample one (ddof = 1): the spread one would expect from a new seed.
With one value it is undefined, so ``std`` is ``None`` (JSON ``null``), never 0.0, which would claim
a measured absence of spread; tables print it as "—".
"""

from __future__ import annotations

import statistics
from typing import Iterable

UNDEFINED = "—"  # how a table shows a standard deviation that one value cannot give


def spread(values: Iterable[float]) -> dict[str, float | int | None]:
    """``{"mean", "std", "min", "max", "n"}`` of ``values``; ``std`` is the sample std, None for one value."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("spread() needs at least one value")
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "min": min(vals), "max": max(vals), "n": len(vals)}


def mean_std_text(mean: float, std: float | None, *, digits: int = 4, scale: float = 1.0) -> str:
    """``"mean ± std"`` with ``digits`` decimals after multiplying by ``scale`` (100 for percent); "—" for no std."""
    spread_text = UNDEFINED if std is None else f"{scale * std:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {spread_text}"
