"""Inference for any run directory: uint8 images in, logits out, whatever trained the run.

    >>> import numpy as np
    >>> from mnistlab.frameworks.inference import predictor
    >>> predict = predictor("runs/simple")          # a PyTorch, Keras or ensemble run
    >>> predict(np.zeros((3, 28, 28), np.uint8)).shape       # uint8 [N, 28, 28] → logits [N, 10]
    (3, 10)

The framework comes from the run's ``config.json`` and its predictor from the framework table
(:mod:`mnistlab.frameworks`). An ensemble directory (``kind: ensemble``, written by
:mod:`mnistlab.ensembles`) predicts with its members and returns the log of their averaged
probabilities, weighted (and each member at its temperature) as the ensemble was, so evaluation
and the HTTP service treat it like any run; members of weight 0 are not loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from mnistlab import frameworks, runs
from mnistlab.errors import UserError
from mnistlab.maths.combine import ensemble_logits
from mnistlab.runconfig import RunConfig

Predictor = Callable[[np.ndarray], np.ndarray]


def predictor(run_dir: str | Path) -> Predictor:
    """A function from uint8 images ``[N, 28, 28]`` to logits ``[N, classes]`` for any run or ensemble."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    if config.is_ensemble:
        return _ensemble_predictor(run_dir, config)
    return frameworks.for_run(config, run_dir).predict_function(run_dir, config)


def member_dir(ensemble_dir: Path, member: str) -> Path:
    """A member's run directory: as recorded, or relative to the ensemble's folder when it moved with it."""
    path = Path(member)
    if path.is_dir() or path.is_absolute():
        return path
    beside = ensemble_dir.parent / path.name
    return beside if beside.is_dir() else path


def _ensemble_predictor(run_dir: Path, config: RunConfig) -> Predictor:
    used = [m for m in config.members if m.used]  # selection may leave members out
    if not used:
        raise UserError(f"{run_dir}: no member of this ensemble has a positive weight; build it again")
    predictors = [predictor(member_dir(run_dir, m.run_dir)) for m in used]  # every member checked first
    weights = [1.0 if m.weight is None else m.weight for m in used]
    temps = [m.temperature or 1.0 for m in used]
    return lambda images: ensemble_logits([p(images) for p in predictors], weights, temps)
