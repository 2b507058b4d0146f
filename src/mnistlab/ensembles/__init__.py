"""Ensembles of any runs — seeds, architectures, frameworks — with members and weights chosen on validation.

    >>> from mnistlab.ensembles import ensemble_runs
    >>> result = ensemble_runs(["runs/simple", "runs/simple-s1"], out="runs/ens")    # evaluated runs
    >>> result["run_dir"], result["selection"]["members_offered"]
    ('runs/ens', 2)

The rooms:

* :mod:`.select` — weights from validation predictions only: Caruana's greedy selection with
  replacement, NLL-fitted weights, the plain average, accuracy weights;
* :mod:`.build` — :func:`ensemble_runs`: run directories in, an ensemble run directory out.

The weighted mean of the members' probabilities is pure maths: :mod:`mnistlab.maths.combine`.
Training the members ``arch × seed`` and then building the ensemble runs other jobs, so it is an
experiment: :mod:`mnistlab.experiments.ensemble_train`.
"""

from mnistlab.ensembles.build import ensemble_runs
from mnistlab.ensembles.select import METHODS, select_weights

__all__ = ["METHODS", "ensemble_runs", "select_weights"]
