"""Experiments: the orchestrators that run many jobs of the floors below, one floor above them all.

* :mod:`.quickstart` (with its planner :mod:`.budget`) — train, evaluate, ensemble and report within a budget;
* :mod:`.multiseed` — one config over several seeds;
* :mod:`.frameworks` — the same model trained and measured in PyTorch and in Keras;
* :mod:`.ensemble_train` — train the members ``arch × seed``, then build the ensemble;
* :mod:`.transfer_curve` — transfer accuracy against the number of target labels.

Only ``commands/`` (and so the CLI) imports this package; nothing below it does.
"""
