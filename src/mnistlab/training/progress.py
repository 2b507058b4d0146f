"""Progress displays: training's epochs, and any other wait (evaluation, TTA, MC dropout, export, bench).

    >>> with WorkProgress("evaluate", unit="images") as work:     # stderr is no terminal here: silent
    ...     predict = work.counting(lambda x: x * 2)
    ...     predict(np.arange(3)).tolist(), work.done
    ([0, 2, 4], 3)

Results go to stdout; this module writes only to stderr, and shows no live display when stderr
is not a terminal (CI logs stay readable). On a terminal a finished epoch's line is printed whole
(wrapped on a narrow one), not squeezed into the bar's row, where rich would cut it off.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def stderr_log(message: str) -> None:
    """One progress line on stderr, flushed at once: the ``log`` callback of long jobs."""
    print(message, file=sys.stderr, flush=True)


class EpochProgress:
    """Context manager: ``start_epoch``, ``advance`` per batch, ``end_epoch`` with the row."""

    def __init__(self, label: str, enabled: bool = True, console: Console | None = None):
        self.label = label
        self.console = console or Console(file=sys.stderr)
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
            # The bar's row holds one terminal line; the finished epoch's line is printed above it, whole.
            self._progress.update(self._task, visible=False)
            self._progress.console.print(line, highlight=False, overflow="fold")
        else:
            print(line, file=sys.stderr, flush=True)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)


class WorkProgress:
    """Context manager: a live bar (``total`` known) or count on stderr while work is done; ``advance(n)``.

    Nothing is shown when stderr is not a terminal or ``enabled`` is false, and the display goes
    away when the work ends (the results that follow go to stdout).
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "images", enabled: bool = True,
                 console: Console | None = None):
        self.label, self.total, self.unit = label, total, unit
        self.console = console or Console(file=sys.stderr)
        self.live = enabled and self.console.is_terminal
        self.done = 0
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> "WorkProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                MofNCompleteColumn() if self.total else TextColumn("{task.completed:,.0f}"),
                TextColumn(self.unit), TimeElapsedColumn(), console=self.console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def advance(self, n: int = 1, step: str | None = None) -> None:
        """``n`` more units done; ``step`` names what is being done now (shown after the label)."""
        self.done += n
        if self._progress is not None:
            description = f"{self.label}: {step}" if step else self.label
            self._progress.update(self._task, advance=n, description=description)

    def counting(self, predict: Callable[[Any], Any], batch: int = 1024) -> Callable[[Any], Any]:
        """``predict`` called on chunks of ``batch`` images, each counted. The predictors compute in
        chunks of 1,024 from the start of a call, so the same chunks give the same numbers."""
        def counted(images: Any) -> Any:
            outs = []
            for start in range(0, len(images), batch):
                outs.append(np.asarray(predict(images[start: start + batch])))
                self.advance(len(outs[-1]))
            return np.concatenate(outs) if outs else np.asarray(predict(images))

        return counted
