"""The Python face of mnistlab: ``mnistlab.train``, ``load``, ``ensemble``, ``compare`` and :class:`Run`.

    >>> from mnistlab.api import Metrics
    >>> Metrics({"accuracy": 0.9921}).accuracy
    0.9921

Re-exported by :mod:`mnistlab` itself, which loads this package on first use (so ``import
mnistlab`` stays cheap). :mod:`mnistlab.api.run` holds :class:`Run` and the functions,
:mod:`mnistlab.api.results` what they return, :mod:`mnistlab.api.inputs` what images they accept.
"""

from mnistlab.api.results import Comparison, Explanation, Metrics, Prediction
from mnistlab.api.run import Run, compare, ensemble, export_run, load, prepare_torchrun, train, train_config

__all__ = ["Comparison", "Explanation", "Metrics", "Prediction", "Run", "compare", "ensemble", "export_run",
           "load", "prepare_torchrun", "train", "train_config"]
