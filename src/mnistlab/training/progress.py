"""Progress display for training: a rich bar on a terminal, one log line per epoch otherwise.

Results go to stdout; this module writes only to stderr, and shows no live display when stderr
is not a terminal (CI logs stay readable).
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def stderr_log(message: str) -> None:
    """One progress line on stderr, flushed at once: the ``log`` callback of long jobs."""
    print(message, file=sys.stderr, flush=True)


class EpochProgress:
    """Context manager: ``start_epoch``, ``advance`` per batch, ``end_epoch`` with the row."""

    def __init__(self, label: str, enabled: bool = True):
        self.label = label
        self.console = Console(file=sys.stderr)
        self.live = enabled and self.console.is_terminal
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> "EpochProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self.console, transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, total: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(f"{self.label} {epoch}/{epochs}", total=total, stats="")

    def advance(self, n: int, loss: float, acc: float, rate: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n,
                                  stats=f"loss {loss:.4f} acc {acc:.4f} {rate:,.0f}/s")

    def end_epoch(self, row: dict[str, float], note: str = "") -> None:
        if not self.enabled:
            return
        line = (f"{self.label} epoch {int(row['epoch'])}: train loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.4f} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} | "
                f"lr {row['lr']:.2e} | {row['seconds']:.1f}s {row['samples_per_s']:,.0f}/s{note}")
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, stats=line.split(": ", 1)[1])
        else:
            print(line, file=sys.stderr, flush=True)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)
