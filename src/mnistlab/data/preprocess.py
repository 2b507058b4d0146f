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

Two pipelines, each copying how its data set was made; the registry entry of a data set names
its own (:attr:`mnistlab.data.registry.DatasetInfo.pipeline`), so a run uses the one of the data
set it was trained on. Both start alike (:mod:`mnistlab.data.gray`): grayscale; invert when the
background is light (both data sets show a light object on black); background level → 0.

- ``digit`` (MNIST, handwriting): stretch the ink to full white; crop to the ink; scale the digit
  so its longer side is 20 pixels; paste it so that its centre of mass sits at the centre.
- ``object`` (Fashion-MNIST, a photo of a product): trim the background margin; scale the object
  so its longer side is 28 pixels, aspect kept; centre its box. No contrast stretch and no centre
  of mass: a shoe's shading is part of it, and its mass is not where its middle is.

``mnistlab predict``, ``explain --image`` and the HTTP service all call :func:`image_to_input`
(decode safely, then the pipeline, refusing a picture with nothing on it), so a picture is
treated the same everywhere.

A picture larger than ``WORK_SIDE`` is reduced first, by a whole factor, before any array is made
(a JPEG reduced by 2 or 4 is decoded at that scale already): a 4096 × 4096 picture whose every
pixel is ink then takes about 14 MB of arrays rather than 350 MB, and a picture of up to
``WORK_SIDE`` pixels a side, which covers drawings and scans of a digit, gives exactly what it
gave before; a larger one gives what its copy at the reduced size gives.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from mnistlab.data import registry
from mnistlab.data.conform import fit_square, picture_array
from mnistlab.data.gray import MIN_CONTRAST, bounding_box, on_black, resize_longer_side, to_gray
from mnistlab.data.images import ImageRejected, decode_file, decode_image, read_file

# The longest side a picture keeps before its arrays are made. The object may be a small part of
# the picture (a digit on a photographed page); at 1024 one spanning 1/50 of the side still has
# the 20 pixels that the digit pipeline scales it to.
WORK_SIDE = 1024


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


def to_mnist(img: Image.Image, *, digit_box: int = 20, size: int = 28) -> np.ndarray:
    """The ``digit`` pipeline: ``size``×``size`` uint8, white digit on black, MNIST-centred."""
    gray = on_black(to_gray(img, WORK_SIDE))
    if gray.max() < MIN_CONTRAST:
        return np.zeros((size, size), dtype=np.uint8)
    gray = gray * (255.0 / gray.max())
    box = bounding_box(gray, 0.1 * 255)
    if box is None:
        return np.zeros((size, size), dtype=np.uint8)
    digit = resize_longer_side(gray[box], digit_box)
    new_h, new_w = digit.shape
    canvas = np.zeros((size, size), dtype=np.float32)
    yy, xx = np.indices(digit.shape)
    total = max(float(digit.sum()), 1e-6)
    cy, cx = (yy * digit).sum() / total, (xx * digit).sum() / total
    top, left = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    top = min(max(top, 0), size - new_h)
    left = min(max(left, 0), size - new_w)
    canvas[top: top + new_h, left: left + new_w] = digit
    return np.clip(canvas, 0, 255).astype(np.uint8)


def to_fashion(img: Image.Image, *, size: int = 28) -> np.ndarray:
    """The ``object`` pipeline: ``size``×``size`` uint8, the object's box fitted and centred, aspect kept."""
    gray = on_black(to_gray(img, WORK_SIDE))
    # Fashion-MNIST trimmed the edges close to the corner colour; MIN_CONTRAST is that closeness.
    box = bounding_box(gray, MIN_CONTRAST - 1)
    if box is None:
        return np.zeros((size, size), dtype=np.uint8)
    item = resize_longer_side(gray[box], size)
    h, w = item.shape
    top, left = (size - h) // 2, (size - w) // 2
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[top: top + h, left: left + w] = item
    return np.clip(canvas, 0, 255).astype(np.uint8)


def to_plain(img: Image.Image, *, size: int = 28, channels: int = 1) -> np.ndarray:
    """The ``plain`` pipeline, as ``mnistlab data add`` stores a picture: gray (or RGB, ``[3, size, size]``),
    transparent as black, the longer side ``size`` pixels, centred; nothing inverted or cropped."""
    out = fit_square(picture_array(img, channels), size)
    return out if channels == 1 else out.transpose(2, 0, 1).copy()


# Pipeline name (a registry entry's ``pipeline``) → the function, given the picture, the image side
# and the channels. The digit box keeps MNIST's proportion (20 of 28) at any side.
PIPELINES: dict[str, Callable[[Image.Image, int, int], np.ndarray]] = {
    "digit": lambda img, size, _: to_mnist(img, digit_box=max(1, round(size * 20 / 28)), size=size),
    "object": lambda img, size, _: to_fashion(img, size=size),
    "plain": lambda img, size, channels: to_plain(img, size=size, channels=channels),
}


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
    out = PIPELINES[pipeline_name(dataset)](img, info.image_size, info.in_channels)
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
