"""Epoch bookkeeping shared by every trainer: the history row, the best epoch, early stopping.

    >>> sel = EpochSelector(monitor="val_loss", patience=2, max_epochs=10)
    >>> sel.update({"epoch": 1, "val_loss": 0.5, "val_acc": 0.9})
    True
    >>> sel.update({"epoch": 2, "val_loss": 0.6, "val_acc": 0.9}), sel.done(2)
    (False, False)

Decisions look only at validation numbers; the PyTorch and Keras trainers both use this class,
so "best epoch" and "stopped early" mean the same thing whatever the framework.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def epoch_row(epoch: int, loss_sum: float, correct: int, seen: int, val_loss: float, val_acc: float,
              lr: float, seconds: float, train_seconds: float) -> dict[str, float]:
    """One line of ``history.csv``."""
    return {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen,
            "val_loss": val_loss, "val_acc": val_acc, "lr": lr, "seconds": seconds,
            "samples_per_s": seen / train_seconds}


@dataclass
class EpochSelector:
    """Tracks the best epoch on ``monitor`` and stops after ``patience`` epochs without progress."""

    monitor: str
    patience: int
    max_epochs: int
    best: dict[str, float] = field(default_factory=lambda: {"epoch": 0, "val_loss": math.inf, "val_acc": -1.0})
    bad_epochs: int = 0
    stop_reason: str = "max_epochs"

    def update(self, row: dict[str, float]) -> bool:
        """Record an epoch's row; True when it is the new best (save its weights)."""
        if self.monitor == "val_loss":
            improved = row["val_loss"] < self.best["val_loss"]
        else:
            improved = row["val_acc"] > self.best["val_acc"]
        if improved:
            self.best = {"epoch": row["epoch"], "val_loss": row["val_loss"], "val_acc": row["val_acc"]}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return improved

    def done(self, epoch: int) -> bool:
        """Whether training ends after ``epoch`` (budget spent or patience run out)."""
        if self.patience and self.bad_epochs >= self.patience and epoch < self.max_epochs:
            self.stop_reason = "early_stopping"
            return True
        return epoch >= self.max_epochs

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]

    def summary(self, history: list[dict[str, float]], elapsed: float, resumed: bool) -> dict[str, Any]:
        """The run's ``training.json``."""
        return {
            "best_epoch": self.best["epoch"], "best_val_loss": self.best["val_loss"],
            "best_val_acc": self.best["val_acc"], "epochs_run": len(history), "stop_reason": self.stop_reason,
            "train_seconds": round(elapsed, 2),
            "samples_per_s": round(sum(r["samples_per_s"] for r in history) / len(history), 1),
            "resumed": resumed,
        }
