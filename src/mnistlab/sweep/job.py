"""What a sweep worker runs: a :class:`Job` (the study's text, the trials wanted, the objective).

    >>> job = Job(text="[search]", epochs=3, target=None, objective=lambda trial: 0.9)
    >>> job.objective(None), worker_name().count(":")
    (0.9, 1)

:mod:`mnistlab.sweep.worker` looks the job up by ``SweepSettings.job``: a search over a sweep
file (``space``) or a fixed list of runs (``members``, :mod:`mnistlab.sweep.memberjob`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Job:
    """What a worker runs: the study's text (checked against the study's), the epochs the pruner sees,
    the finished trials wanted (None: every enqueued one) and the objective."""

    text: str
    epochs: int
    target: int | None
    objective: Callable[[Any], float]


def worker_name() -> str:
    """``host:pid``: which process ran a trial (recorded in the trial's attributes)."""
    return f"{socket.gethostname()}:{os.getpid()}"
