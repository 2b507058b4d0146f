"""Transfer learning between the data sets: start a run from another run's weights.

    >>> from mnistlab.transfer import transfer_run, transfer_curve          # doctest: +SKIP
    >>> transfer_run("runs/simple-mnist", "fashion-mnist", "finetune", train_subset=1000)  # doctest: +SKIP

:mod:`~mnistlab.transfer.source` opens the source run safely, :mod:`~mnistlab.transfer.run`
trains one transfer run through the shared epoch loop (recipes chosen on validation),
:mod:`~mnistlab.transfer.curve` runs the accuracy-vs-labels curve. See ``docs/transfer.md``.
"""

from mnistlab.transfer.curve import transfer_curve  # noqa: F401
from mnistlab.transfer.run import transfer_run  # noqa: F401
