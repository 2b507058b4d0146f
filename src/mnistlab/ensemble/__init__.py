"""Ensembles of any runs — seeds, architectures, frameworks — with members and weights chosen on validation.

    >>> import numpy as np
    >>> from mnistlab.ensemble import average_probabilities
    >>> average_probabilities([np.array([[0.9, 0.1]]), np.array([[0.5, 0.5]])]).round(2).tolist()
    [[0.7, 0.3]]

The rooms:

* :mod:`.combine` — the weighted mean of the members' probabilities (pure arrays; used by inference);
* :mod:`.select` — weights from validation predictions only: Caruana's greedy selection with
  replacement, NLL-fitted weights, the plain average, accuracy weights;
* :mod:`.build` — :func:`ensemble_runs`: run directories in, an ensemble run directory out;
* :mod:`.train` — :func:`~mnistlab.ensemble.train.ensemble_train`: train the members
  ``arch × seed`` (reusing finished ones, resuming interrupted ones), then build the ensemble.
  Not imported here: it pulls in training and evaluation, which import this package's ``combine``.
"""

from mnistlab.ensemble.build import ensemble_runs
from mnistlab.ensemble.combine import average_probabilities, ensemble_logits, member_probabilities
from mnistlab.ensemble.select import METHODS, select_weights

__all__ = ["METHODS", "average_probabilities", "ensemble_logits", "ensemble_runs", "member_probabilities",
           "select_weights"]
