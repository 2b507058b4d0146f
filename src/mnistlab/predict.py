"""Classify image files with a trained run (``mnistlab predict``).

    >>> from PIL import Image, ImageDraw
    >>> seven = Image.new("L", (56, 56), 255)        # a photo-like picture: black ink on white
    >>> ImageDraw.Draw(seven).line([(14, 12), (42, 12), (24, 46)], fill=0, width=5)
    >>> seven.save("seven.png")
    >>> from mnistlab.predict import predict_files
    >>> predict_files("runs/simple", ["seven.png"])      # doctest: +ELLIPSIS
    [{'file': 'seven.png', 'digit': ..., 'label': ..., 'probability': ..., 'probabilities': [...]}]

Each picture goes through the preprocessing of the data set the run was trained on (its
``config.json`` ``dataset``; :mod:`mnistlab.data.preprocess`): the digit pipeline for MNIST, the
object pipeline for Fashion-MNIST. ``digit`` is the class index (its name kept for the service's
clients), ``label`` the class name (``"Ankle boot"``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab import runs
from mnistlab.data.preprocess import file_to_input
from mnistlab.frameworks.inference import predictor
from mnistlab.maths.metrics import softmax


def predict_arrays(run_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """Probabilities for uint8 images ``[N, 28, 28]`` already preprocessed (light object on black)."""
    return softmax(predictor(run_dir)(images))


def predict_files(run_dir: str | Path, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Preprocess each file for the run's data set and return its predicted class and probabilities."""
    config = runs.read_config(run_dir)
    class_names = config.data.class_names
    prepared = [file_to_input(p, config.dataset) for p in paths]  # every file checked before any work
    for _, notes in prepared:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    images = np.stack([image for image, _ in prepared])
    probs = predict_arrays(run_dir, images)
    results = []
    for path, p in zip(paths, probs):
        k = int(p.argmax())
        results.append({"file": str(path), "digit": k, "label": class_names[k],
                        "probability": round(float(p[k]), 6),
                        "probabilities": [round(float(v), 6) for v in p]})
    return results
