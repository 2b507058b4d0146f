"""Time a callable: batch-1 latency percentiles and batch throughput, each in a time box.

    >>> from mnistlab.timing import throughput
    >>> throughput(lambda x: sum(x), [1, 2, 3], seconds=0.01) > 0
    True

Shared by ``mnistlab bench``, the INT8 export report and the framework comparison, so "images/s"
is measured the same way everywhere: warm-up first, then repeat until the box is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

MIN_REPS = 5


def batch1_latency(fn: Callable[[Any], Any], x: Any, seconds: float, max_reps: int = 20_000) -> dict[str, float]:
    """p50 and p99 of single calls ``fn(x)`` in ms, after a warm-up, within ``seconds``."""
    warm_end = time.perf_counter() + min(0.2, seconds / 5)
    while time.perf_counter() < warm_end:
        fn(x)
    times: list[int] = []
    end = time.perf_counter() + seconds
    while (time.perf_counter() < end or len(times) < MIN_REPS * 10) and len(times) < max_reps:
        t0 = time.perf_counter_ns()
        fn(x)
        times.append(time.perf_counter_ns() - t0)
    ms = np.asarray(times) / 1e6
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "reps": len(times)}


def throughput(fn: Callable[[Any], Any], x: Any, seconds: float) -> float:
    """Images per second of ``fn(x)`` on a batch, after two warm-up calls, within ``seconds``."""
    fn(x)
    fn(x)
    reps, t0 = 0, time.perf_counter()
    while reps < MIN_REPS or time.perf_counter() - t0 < seconds:
        fn(x)
        reps += 1
    return round(reps * len(x) / (time.perf_counter() - t0), 1)
