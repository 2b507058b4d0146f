"""Analysis of finished runs: plots, calibration, uncertainty and model comparison.

Everything here is computed from the files a run directory already holds (history, saved logits);
the only exception is Monte-Carlo dropout, which needs the model and is computed once and saved.

    >>> from mnistlab.analysis.analyze import analyze_run        # doctest: +SKIP
    >>> summary = analyze_run("runs/simple-20261125-101500")      # doctest: +SKIP
    >>> summary["calibration"]["temperature"]                     # doctest: +SKIP
    1.31
"""
