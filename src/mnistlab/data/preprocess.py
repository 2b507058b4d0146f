"""Any picture → the 28×28 uint8 image a model of a data set expects, by that data set's pipeline.

    >>> from PIL import Image
    >>> page = Image.new("L", (200, 120), color=255)      # a white page...
    >>> page.paste(0, (60, 20, 100, 100))                 # ...with a dark 40×80 bar on it
    >>> to_mnist(page).shape, int((to_mnist(page) > 0).any(0).sum())       # digit: 20-pixel box
    ((28, 28), 10)
    >>> int((to_fashion(page) > 0).any(0).sum()), int((to_fashion(page) > 0).any(1).sum())
    (14, 28)
    >>> pipeline_name("fashion-mnist")
    'object'

Three pipelines: two copy how their data set was made (``digit`` for MNIST, ``object`` for
Fashion-MNIST), and ``plain`` only resizes (an added data set of other pictures); the registry entry of a data set names its own
(:attr:`mnistlab.data.registry.DatasetInfo.pipeline`), so a run uses the one of the data set it
was trained on. The pipelines themselves live in :mod:`mnistlab.data.pipeline`, which imports only
numpy and Pillow, so that ``mnistlab export`` can copy them verbatim beside the ONNX model; this
module adds mnistlab's safe decoding and one-line errors.

``mnistlab predict``, ``explain --image`` and the HTTP service all call :func:`image_to_input`
(decode safely, then the pipeline, refusing a picture with nothing on it), so a picture is
treated the same everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data import registry
from mnistlab.data.images import ImageRejected, decode_file, decode_image, read_file
from mnistlab.data.pipeline import PIPELINES, WORK_SIDE, to_fashion, to_mnist, to_plain

__all__ = ["PIPELINES", "WORK_SIDE", "to_fashion", "to_mnist", "to_plain"]  # the pipelines, for mnistlab's callers


def load_image(path: str | Path, notes: list[str] | None = None) -> Image.Image:
    """Open ``path`` safely (see :mod:`mnistlab.data.images`), or raise a one-line :class:`UserError`.

    Notes (an animated file's first frame was used) are appended to ``notes``, or printed on
    stderr when ``notes`` is None.
    """
    decoded = decode_file(path, max_side=WORK_SIDE)
    if notes is None:
        for note in decoded.notes:
            print(f"warning: {note}", file=sys.stderr)
    else:
        notes.extend(decoded.notes)
    return decoded.image


def pipeline_name(dataset: str) -> str:
    """The pipeline that pictures for a model of ``dataset`` go through (from the registry)."""
    name = registry.get(dataset).pipeline
    if name not in PIPELINES:  # a registry entry naming a pipeline this module lacks is a bug
        raise KeyError(f"data set {dataset!r} names an unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return name


def to_model_input(img: Image.Image, dataset: str, name: str = "image") -> np.ndarray:
    """``img`` through ``dataset``'s pipeline, at its image size and channels; under the digit and object
    pipelines a picture with nothing on it is an :class:`ImageRejected` (a plain picture is taken as it is)."""
    info = registry.get(dataset)
    try:
        out = PIPELINES[pipeline_name(dataset)](img, info.image_size, info.in_channels)
    except ValueError as exc:  # the pipeline's own words (it imports nothing of mnistlab's)
        raise ImageRejected(f"{name}: {exc}", "decode") from None
    if out.max() == 0 and info.pipeline != "plain":
        raise ImageRejected(f"{name}: no ink found (the picture is blank or a single colour); "
                            f"give a picture of {registry.a_subject(registry.get(dataset))}", "blank")
    return out


def image_to_input(data: bytes, dataset: str, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """Untrusted image bytes → (uint8 image of the data set's size, notes): THE preprocessing of ``mnistlab predict``,
    ``explain --image`` and the HTTP service, for a model of ``dataset``."""
    decoded = decode_image(data, name=name, max_side=WORK_SIDE)
    return to_model_input(decoded.image, dataset, name), decoded.notes


def file_to_input(path: str | Path, dataset: str) -> tuple[np.ndarray, list[str]]:
    """:func:`image_to_input` of a file (its size checked before it is read)."""
    return image_to_input(read_file(path), dataset, name=str(path))


def image_to_mnist(data: bytes, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """:func:`image_to_input` for an MNIST model (the digit pipeline)."""
    return image_to_input(data, "mnist", name)


def file_to_mnist(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """:func:`file_to_input` for an MNIST model (the digit pipeline)."""
    return file_to_input(path, "mnist")
