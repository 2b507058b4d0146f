"""A wall-time budget for the main job: from each model's measured speed, the epochs that fit.

    >>> costs = [ModelCost("simple", 8, epoch_s=20, fixed_s=10), ModelCost("deeper", 12, epoch_s=90, fixed_s=30)]
    >>> plan = plan_epochs(costs, budget_s=600, spent_s=30)
    >>> plan.epochs, plan.fits
    ({'simple': 6, 'deeper': 4}, True)
    >>> plan.line()
    'budget 10 min: simple 6 epochs, deeper 4 (of 8, 12; planned 560 s)'

OneCycle must know a run's length before its first step, so the epochs are chosen up front:
:func:`plan_epochs` starts from each model's default epochs and, while the plan overruns the
budget, takes one epoch from the model that keeps the largest share of its default (the
costlier one on a tie), so every model is cut by about the same fraction and none below one
epoch; then it gives back epochs that still fit (the last cut may have freed more than needed,
and a cheap model may take it). The costs come from :mod:`mnistlab.training.throughput` (a few
timed steps per model); the time already spent (start-up, data, measuring) and each model's
fixed cost (building, evaluation, its part of the report) are counted, and :data:`RESERVE` of
the budget is kept free for what the measurement misses (a busy machine, file writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnistlab.errors import UserError

RESERVE = 0.05  # of the budget, kept free
MIN_BUDGET_MIN = 1.0  # below a minute nothing useful can be trained and evaluated
REPORT_S = 10.0  # writing report.html and the comparison figures, once (measured: 5-10 s on 2 cores)
PLOT_S = 5.0  # each model's figures in the report


@dataclass(frozen=True)
class ModelCost:
    """One model's seconds per epoch (training + validation) and its fixed seconds outside epochs."""

    name: str
    default_epochs: int
    epoch_s: float
    fixed_s: float


@dataclass
class Plan:
    """The chosen epochs, the budget, and the seconds the plan expects the whole job to take."""

    budget_s: float
    epochs: dict[str, int]
    planned_s: float
    fits: bool
    defaults: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """One line for stderr: the budget and the epochs chosen."""
        chosen = ", ".join(f"{name} {n} epoch{'s' if n != 1 else ''}" if i == 0 else f"{name} {n}"
                           for i, (name, n) in enumerate(self.epochs.items()))
        of = ", ".join(str(self.defaults[name]) for name in self.epochs)
        return f"budget {self.budget_s / 60:g} min: {chosen} (of {of}; planned {self.planned_s:.0f} s)"

    def record(self) -> dict[str, Any]:
        """What each run's config.json keeps under ``budget`` (see mnistlab.runconfig)."""
        return {"budget_s": round(self.budget_s, 1), "planned_s": round(self.planned_s, 1), "epochs": dict(self.epochs)}


def check_budget(minutes: float) -> float:
    """``--budget`` in minutes → seconds, or a one-line UserError for a budget nothing fits in."""
    if not minutes >= MIN_BUDGET_MIN:  # also refuses NaN
        raise UserError(f"--budget {minutes:g} is too small: give at least {MIN_BUDGET_MIN:g} minute "
                        "(the default is 15; --smoke runs a tiny job in seconds)")
    return minutes * 60.0


def epoch_seconds(n_train: int, n_val: int, train_per_s: float, eval_per_s: float) -> float:
    """One epoch: every training image once, then the validation pass."""
    return n_train / train_per_s + n_val / eval_per_s


def plan_epochs(costs: list[ModelCost], budget_s: float, spent_s: float = 0.0, reserve: float = RESERVE) -> Plan:
    """The most epochs per model (up to its default) that end the job within ``budget_s``; see the module doc."""
    available = budget_s * (1 - reserve) - spent_s - REPORT_S - sum(c.fixed_s for c in costs)
    epochs = {c.name: c.default_epochs for c in costs}

    def train_s() -> float:
        return sum(epochs[c.name] * c.epoch_s for c in costs)

    while train_s() > available:
        cuttable = [c for c in costs if epochs[c.name] > 1]
        if not cuttable:
            break
        cut = max(cuttable, key=lambda c: (epochs[c.name] / c.default_epochs, c.epoch_s))
        epochs[cut.name] -= 1
    while True:  # a cut may have freed more than needed: give epochs back, the most-cut model first
        room = [c for c in costs if epochs[c.name] < c.default_epochs and train_s() + c.epoch_s <= available]
        if not room:
            break
        epochs[min(room, key=lambda c: epochs[c.name] / c.default_epochs).name] += 1
    planned = spent_s + REPORT_S + sum(c.fixed_s for c in costs) + train_s()
    return Plan(budget_s, epochs, planned, fits=train_s() <= available,
                defaults={c.name: c.default_epochs for c in costs})
