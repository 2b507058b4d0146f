"""``export/preprocess.py``: the run's preprocessing, for clients of the ONNX model without mnistlab.

    >>> from mnistlab.runconfig import DataFacts, RunConfig
    >>> facts = DataFacts(class_names=tuple("0123456789"), num_classes=10, mean=0.1307, std=0.3081,
    ...                   image_size=28, in_channels=1)
    >>> text = source(RunConfig(kind="train", framework="torch", dataset="mnist", arch="simple", data=facts))
    >>> "PIPELINE = 'digit'" in text, "import mnistlab" in text, "def to_input(" in text
    (True, False, True)

The file is :mod:`mnistlab.data.pipeline` — the very code ``mnistlab predict`` runs — copied
verbatim below a docstring of its own, with the run's constants (data set, pipeline, image size)
and ``to_input(image)`` appended: a PIL image, a path or a list of them → the float32
``[N, 1, 28, 28]`` array, pixels in [0, 1], that the ONNX input ``images`` takes. It imports only
numpy and Pillow. Because it is copied, not rewritten, the exported preprocessing cannot drift
from mnistlab's: ``tests/test_preprocess_export.py`` feeds the same pictures through both.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mnistlab.data import pipeline
from mnistlab.data.preprocess import pipeline_name
from mnistlab.fileio import write_text
from mnistlab.runconfig import RunConfig
from mnistlab.version import __version__

PREPROCESS_FILE = "preprocess.py"
# The only packages the file may import beyond the standard library (tests/test_preprocess_export.py checks).
ALLOWED_IMPORTS = ("numpy", "PIL")

_HEADER = '''"""Preprocessing for {arch} ({dataset}): a picture → the input ``images`` of model.onnx beside it.

    from preprocess import to_input
    x = to_input("seven.png")          # or a PIL image, or a list of either: float32 [N, {channels}, {size}, {size}]

Written by `mnistlab export` (mnistlab {version}): mnistlab's own preprocessing
(mnistlab/data/pipeline.py, copied verbatim below) with this run's constants at the end, so a
picture gives the same array here as in `mnistlab predict`. Needs only Python >= 3.10, numpy
and Pillow >= 9.1.

{what}
"""
'''

_FOOTER = '''

# --- this run's constants, written by `mnistlab export` ---
DATASET = {dataset!r}
PIPELINE = {pipeline!r}
IMAGE_SIZE = {size!r}
CHANNELS = {channels!r}


def to_input(image: Picture | Sequence[Picture]) -> np.ndarray:
    """A PIL image or a path (or a list of them) → float32 [N, CHANNELS, IMAGE_SIZE, IMAGE_SIZE], pixels in [0, 1]."""
    return pictures_to_array(image, PIPELINE, size=IMAGE_SIZE, channels=CHANNELS)
'''

_WHAT = {
    "digit": 'The "digit" pipeline: invert a light background, stretch the ink, crop to it, scale its\n'
             "longer side to 20 pixels and centre its mass, as MNIST was made.",
    "object": 'The "object" pipeline: invert a light background, trim the margin, scale the longer side\n'
              "to the image size and centre the box, as Fashion-MNIST was made.",
    "plain": 'The "plain" pipeline: the picture as it is (transparent as black), its longer side scaled\n'
             "to the image size and centred, as 'mnistlab data add' stored the training pictures.",
}


def _body() -> str:
    """The pipeline module's source without its docstring (the header replaces it)."""
    text = Path(pipeline.__file__).read_text(encoding="utf-8")
    first = ast.parse(text).body[0]
    lines = text.splitlines(keepends=True)
    return "".join(lines[first.end_lineno:]).lstrip("\n")


def source(config: RunConfig) -> str:
    """The text of ``preprocess.py`` for a run of ``config``."""
    name = pipeline_name(config.dataset)
    facts = {"arch": config.arch, "dataset": config.dataset, "pipeline": name, "size": config.data.image_size,
             "channels": config.data.in_channels or 1,
             "version": __version__, "what": _WHAT[name]}
    return _HEADER.format(**facts) + "\n" + _body() + _FOOTER.format(**facts)


def write_preprocess(path: Path, config: RunConfig) -> Path:
    """Write ``preprocess.py`` for the run to ``path`` (atomically); the path."""
    write_text(path, source(config))
    return path
