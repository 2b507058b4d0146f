"""Analysis of finished runs: plots, calibration, uncertainty and model comparison.

Everything here is computed from the files a run directory already holds (history, saved logits);
the only exception is Monte-Carlo dropout, which needs the model and is computed once and saved.

One call does it all for an evaluated run (nine figures: a few seconds; ``mnistlab plots``)::

    from mnistlab.analysis.analyze import analyze_run

    summary = analyze_run("runs/simple")
    summary["calibration"]["temperature"]     # fitted on the validation logits, e.g. 1.31
    summary["figures"]["reliability"]         # 'plots/calibration/reliability_diagram.png'

Each figure is also a function of plain data (:mod:`.plots`, :mod:`.plots_confidence`,
:mod:`.plots_errors`, :mod:`.plots_compare`), and so is each number (:mod:`mnistlab.maths`).
"""
