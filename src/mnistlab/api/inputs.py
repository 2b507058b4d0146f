"""Whatever a Python user passes as images → the uint8 ``[N, H, W]`` array a run's model takes.

    >>> import numpy as np
    >>> from mnistlab.api.inputs import as_images
    >>> as_images(np.zeros((28, 28), np.uint8), "mnist", 28)[0].shape
    (1, 28, 28)
    >>> as_images(np.zeros((2, 1, 28, 28), np.uint8), "mnist", 28)[0].shape
    (2, 28, 28)

Arrays and tensors are taken as model inputs already (light strokes on black, as in the data
set); file paths and PIL images go through the run's data set's picture pipeline, exactly as
``mnistlab predict`` and the service treat them (:mod:`mnistlab.data.preprocess`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.errors import UserError

MAX_IMAGES = 100_000  # one call; more is a data set, for `mnistlab evaluate`


def _array(images: Any) -> np.ndarray | None:
    """A numpy view of an array or a tensor (torch, TensorFlow), or None for anything else."""
    if isinstance(images, np.ndarray):
        return images
    if hasattr(images, "detach") and hasattr(images, "cpu"):  # a torch tensor
        return images.detach().cpu().numpy()
    if hasattr(images, "numpy") and hasattr(images, "shape"):  # a TensorFlow tensor
        return np.asarray(images.numpy())
    return None


def _colour(x: np.ndarray, size: int) -> np.ndarray:
    """Colour images ``(3, H, W)``, ``(H, W, 3)`` or a batch of either → ``(N, 3, H, W)``."""
    x = x[None] if x.ndim == 3 else x
    if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1:] != (3, size, size):
        raise UserError(f"images of shape {list(x.shape)}: this run takes colour images; give (3, {size}, {size}), "
                        f"({size}, {size}, 3) or a batch of them, or file paths and PIL images")
    return x


def _from_array(x: np.ndarray, size: int, channels: int = 1) -> np.ndarray:
    if channels == 3:
        x = _colour(x, size)
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 and channels == 1:
        raise UserError(f"images of shape {list(x.shape)}: give (H, W), (N, H, W) or (N, 1, H, W)")
    if x.shape[-2:] != (size, size):
        raise UserError(f"images are {x.shape[1]}×{x.shape[2]}, this run takes {size}×{size}; "
                        "pass file paths or PIL images to have them preprocessed")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise UserError("float images must hold values in [0, 1]; or give uint8 images (0-255)")
        return np.round(x * 255).astype(np.uint8)
    if x.dtype.kind in "iu" and x.size and (x.min() < 0 or x.max() > 255):
        raise UserError("integer images must hold values in 0..255")
    if x.dtype.kind not in "iu":
        raise UserError(f"images of dtype {x.dtype}: give uint8 (0-255) or float (0-1) pixels")
    return x.astype(np.uint8)


def _picture(item: Any, dataset: str) -> tuple[np.ndarray, list[str]]:
    """One file path or PIL image through the data set's pipeline."""
    from PIL import Image

    from mnistlab.data.preprocess import file_to_input, to_model_input

    if isinstance(item, (str, Path)):
        return file_to_input(item, dataset)
    if isinstance(item, Image.Image):
        return to_model_input(item, dataset), []
    raise UserError(f"cannot read an image from {type(item).__name__}: give a file path, a PIL image, "
                    "a uint8 numpy array or a tensor")


def as_images(images: Any, dataset: str, size: int, channels: int = 1) -> tuple[np.ndarray, list[list[str]]]:
    """(uint8 ``[N, size, size]``, or ``[N, 3, size, size]`` for a colour run, and notes per image) from an
    array, a tensor, a path, a PIL image or a list of them."""
    array = _array(images)
    if array is not None:
        x = _from_array(array, size, channels)
        notes: list[list[str]] = [[] for _ in x]
    else:
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise UserError("no images given")
        if all(_array(i) is not None for i in items):
            x = np.concatenate([_from_array(_array(i), size, channels) for i in items])
            notes = [[] for _ in x]
        else:
            prepared = [_picture(i, dataset) for i in items]  # every picture checked before any work
            x, notes = np.stack([a for a, _ in prepared]), [n for _, n in prepared]
    if not 1 <= len(x) <= MAX_IMAGES:
        raise UserError(f"{len(x)} images: give 1 to {MAX_IMAGES:,} per call")
    return np.ascontiguousarray(x), notes
