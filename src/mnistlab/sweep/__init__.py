"""Hyper-parameter sweeps on Optuna: a search space in TOML, trials as ordinary run directories.

    mnistlab sweep space.toml --trials 20 --workers 2 --out sweeps/simple

:mod:`space` reads and checks the TOML; :mod:`study` opens the Optuna study (storage, sampler,
pruner); :mod:`worker` is the process that runs trials one after another; :mod:`runner` starts
the workers and waits; :mod:`summary` writes the results and Optuna's figures; :mod:`preset` the
best trial as a preset file. Optuna is imported only here (the ``sweep`` extra).
"""
