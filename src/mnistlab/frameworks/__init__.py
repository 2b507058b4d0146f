"""The frameworks mnistlab trains with, each a registered :class:`~mnistlab.frameworks.registry.Framework`.

    >>> from mnistlab import frameworks
    >>> frameworks.FRAMEWORKS
    ('torch', 'keras')
    >>> frameworks.get("torch").why_not("onnx") is None
    True

Ask the entry, never the name: ``frameworks.get(name).can("onnx")``, ``.require("explain")``,
``.train(cfg, out, ...)``, ``.predict_function(run_dir, config)``; a run's own entry is
``frameworks.for_run(config, run_dir)``. See :mod:`mnistlab.frameworks.registry`.
"""

from __future__ import annotations

# Each registers its framework, in this order: PyTorch first, as the default.
# isort: off
from mnistlab.frameworks import torch_entry  # noqa: F401
from mnistlab.frameworks import keras  # noqa: F401
# isort: on
from mnistlab.frameworks.registry import (  # noqa: F401  (the names callers use)
    CAPABILITIES,
    TABLE,
    Framework,
    available,
    check_name,
    for_run,
    get,
    label,
    names,
    of_run,
)

FRAMEWORKS = names()  # the default first: what `--framework` offers
