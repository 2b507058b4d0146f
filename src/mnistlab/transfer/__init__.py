"""Transfer learning between the data sets: start a run from another run's weights.

From an MNIST run to Fashion-MNIST with 1,000 labelled images (``mnistlab transfer``); ``finetune``
tries three recipes, each with the full training budget, so this takes a while::

    from mnistlab.transfer import transfer_run

    transfer_run("runs/simple-mnist", "fashion-mnist", "finetune", train_subset=1000)

:mod:`~mnistlab.transfer.source` opens the source run safely, :mod:`~mnistlab.transfer.run`
trains one transfer run through the shared epoch loop (recipes chosen on validation). The
accuracy-vs-labels curve, which runs many transfer runs, is an experiment one floor up:
:mod:`mnistlab.experiments.transfer_curve`. See ``docs/transfer.md``.
"""

from mnistlab.transfer.run import transfer_run  # noqa: F401
