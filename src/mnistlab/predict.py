"""Classify pictures, folders of them and Kaggle-layout CSV files with a trained run (``mnistlab predict``).

    >>> from PIL import Image, ImageDraw
    >>> seven = Image.new("L", (56, 56), 255)        # a photo-like picture: black ink on white
    >>> ImageDraw.Draw(seven).line([(14, 12), (42, 12), (24, 46)], fill=0, width=5)
    >>> seven.save("seven.png")
    >>> from mnistlab.predict import predict_files
    >>> predict_files("runs/simple", ["seven.png"])      # doctest: +ELLIPSIS
    [{'file': 'seven.png', 'digit': ..., 'label': ..., 'probability': ..., 'probabilities': [...]}]

Each picture goes through the preprocessing of the data set the run was trained on (its
``config.json`` ``dataset``; :mod:`mnistlab.data.preprocess`): the digit pipeline for MNIST, the
object pipeline for Fashion-MNIST, the one recorded by ``data add`` for a data set of your own.
The rows of a CSV (``pixel0``…, with or without ``label``) are images of the data set already:
they are only brought to its size and channels, as ``data add`` did. ``digit`` is the class
index (its name kept for the service's clients), ``label`` the class name (``"Ankle boot"``);
a CSV row's result also has ``row``, its number from 1 (Kaggle's ``ImageId``).

:func:`predict_paths` predicts what it can: a file that cannot be read is a :class:`Failure`
(with its one-line reason), and the other files are still predicted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab import runs
from mnistlab.data.preprocess import file_to_input
from mnistlab.data.readers import read_csv_images
from mnistlab.errors import UserError
from mnistlab.fileio import write_text
from mnistlab.frameworks.inference import predictor
from mnistlab.maths.metrics import softmax


@dataclass(frozen=True)
class Failure:
    """A file that could not be predicted, and why (one line)."""

    file: str
    reason: str


def predict_arrays(run_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """Probabilities for uint8 images already preprocessed (``[N, H, W]``, or ``[N, 3, H, W]`` in colour)."""
    return softmax(predictor(run_dir)(images))


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Files given, and the files under folders given (recursively, sorted, hidden ones skipped)."""
    out = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(path)
            continue
        for folder, dirs, files in os.walk(path):  # links to folders are not followed: no loops
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(folder) / f for f in sorted(files) if not f.startswith(".")]
    return out


def _prepare(path: Path, dataset: str, size: int, channels: int) -> tuple[list[np.ndarray], list[int | None]]:
    """(images, CSV row numbers or [None]) of one file; a one-line UserError when it cannot be read."""
    if path.suffix.lower() == ".csv":
        array, _, notes = read_csv_images(path, size, channels)
        images, rows = list(array), list(range(1, len(array) + 1))
    else:
        image, notes = file_to_input(path, dataset)
        images, rows = [image], [None]
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return images, rows


def predict_paths(run_dir: str | Path, paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[Failure]]:
    """Predict every picture and CSV row under ``paths``; returns (results in input order, failures)."""
    config = runs.read_config(run_dir)
    data = config.data
    size, channels = data.image_size or 28, data.in_channels or 1
    images, sources, failures = [], [], []
    for path in expand(paths):
        try:
            prepared, rows = _prepare(path, config.dataset, size, channels)
        except UserError as exc:
            failures.append(Failure(str(path), str(exc)))
            continue
        images += prepared
        sources += [(str(path), row) for row in rows]
    if not images:
        return [], failures
    probs = predict_arrays(run_dir, np.stack(images))
    results = []
    for (file, row), p in zip(sources, probs):
        k = int(p.argmax())
        results.append({"file": file, **({"row": row} if row is not None else {}), "digit": k,
                        "label": data.class_names[k], "probability": round(float(p[k]), 6),
                        "probabilities": [round(float(v), 6) for v in p]})
    return results, failures


def predict_files(run_dir: str | Path, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """:func:`predict_paths`, all or nothing: the first file that cannot be read is a one-line UserError."""
    results, failures = predict_paths(run_dir, paths)
    if failures:
        raise UserError(failures[0].reason)
    return results


def write_submission(path: str | Path, results: Sequence[dict[str, Any]]) -> int:
    """Kaggle's ``ImageId,Label`` file (ids from 1, in file order) from the rows of one CSV; returns the rows.

    The label is the class name: for a data set added from Kaggle's ``train.csv`` the names are the
    label values themselves (``"0"`` … ``"9"``).
    """
    rows = [r for r in results if "row" in r]
    files = {r["file"] for r in rows}
    if len(files) != 1 or len(rows) != len(results):
        raise UserError(f"--submission needs exactly one CSV to predict and nothing else (got {len(files)} CSV "
                        f"file(s) and {len(results) - len(rows)} picture(s)); give only Kaggle's test.csv")
    write_text(path, "ImageId,Label\n" + "".join(f"{r['row']},{r['label']}\n" for r in rows))
    return len(rows)
