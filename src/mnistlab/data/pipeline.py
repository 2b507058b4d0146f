"""The preprocessing pipelines themselves: a picture → the 28×28 uint8 image a model expects.

    >>> from PIL import Image
    >>> page = Image.new("L", (40, 30), color=250)             # light paper...
    >>> page.paste(10, (10, 10, 20, 20))                       # ...with a dark square on it
    >>> gray = on_black(to_gray(page))
    >>> float(gray[0, 0]), float(gray[15, 15])                 # paper → 0, ink → bright
    (0.0, 240.0)
    >>> pictures_to_array([page], "digit").shape               # float32 [N, 1, 28, 28] in [0, 1]
    (1, 1, 28, 28)

This module imports only numpy and Pillow, on purpose: ``mnistlab export --format onnx`` copies
it, verbatim, into ``export/preprocess.py`` with the run's constants appended
(:mod:`mnistlab.export.preprocess_file`), so a client without mnistlab prepares pictures exactly
as ``mnistlab predict`` does, and the two cannot drift. mnistlab's own entry points, with their
safety checks and one-line errors, are in :mod:`mnistlab.data.preprocess` and
:mod:`mnistlab.data.images`; a problem here is a ``ValueError``.

Both pipelines start alike: grayscale; invert when the border is light (MNIST and Fashion-MNIST
both show a light object on black); the border's median, the background level, → 0. Then:

- ``digit`` (MNIST, handwriting): stretch the ink to full white; crop to the ink; scale the digit
  so its longer side is 20 pixels; paste it so that its centre of mass sits at the centre.
- ``object`` (Fashion-MNIST, a photo of a product): trim the background margin; scale the object
  so its longer side is 28 pixels, aspect kept; centre its box. No contrast stretch and no centre
  of mass: a shoe's shading is part of it, and its mass is not where its middle is.

A picture larger than ``WORK_SIDE`` is reduced first, by a whole factor, before any array is made
(a JPEG reduced by 2, 4 or 8 is decoded at that scale already): the arrays then take memory by
``WORK_SIDE``, not by the picture.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Opened by name only: PIL would otherwise hand an EPS file to Ghostscript, an interpreter.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MAX_SIDE = 4096  # a picture declaring more pixels a side is refused before it is decoded

# The longest side a picture keeps before its arrays are made. The object may be a small part of
# the picture (a digit on a photographed page); at 1024 one spanning 1/50 of the side still has
# the 20 pixels that the digit pipeline scales it to.
WORK_SIDE = 1024

# Ink fainter than this (out of 255) above the background is noise (JPEG ringing, paper grain),
# not an object: stretching it to full white would invent one. Fashion-MNIST trimmed edges
# within 5% (13/255) of the corner colour; this is a little above that for JPEG noise.
MIN_CONTRAST = 16

# PIL modes holding more than 8 bits a pixel; converting them to "L" clips, so they are rescaled.
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")

Picture = Image.Image | str | Path


def reduction(size: tuple[int, int], max_side: int | None) -> int:
    """The smallest whole factor that brings the longer side of ``size`` to ``max_side`` or less (1 for None)."""
    return -(-max(size) // max_side) if max_side else 1


def load_upright(img: Image.Image, max_side: int | None) -> Image.Image:
    """An opened picture decoded (first frame), a JPEG at the scale :func:`reduction` will reduce it
    to (the decoder's own scaling: a quarter of the memory at each step), and turned upright by
    its EXIF orientation, as a phone's viewer shows it."""
    if getattr(img, "is_animated", False):
        img.seek(0)
    width, height = img.size
    scale = reduction((width, height), max_side)
    if scale in (2, 4, 8):  # draft() does nothing but for a JPEG, which it decodes at ≥ the size asked
        img.draft(img.mode, (max(1, width // scale), max(1, height // scale)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about odd metadata it then ignores
        img.load()
        upright = ImageOps.exif_transpose(img)
    return img if upright is None else upright


def open_picture(path: str | Path) -> Image.Image:
    """A picture file, opened as mnistlab opens one (accepted formats only, size checked first)."""
    img = Image.open(path, formats=ACCEPTED_FORMATS)
    if max(img.size) > MAX_SIDE:
        raise ValueError(f"{path}: {img.size[0]}×{img.size[1]} is over the {MAX_SIDE}×{MAX_SIDE} limit")
    return load_upright(img, WORK_SIDE)


def _wide_to_gray(x: np.ndarray, mode: str) -> np.ndarray:
    """The values ``x`` of a 16-bit, 32-bit or float picture of ``mode`` → [0, 255] by their range
    (not clipped to white)."""
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(x.min()), float(x.max())
    if mode.startswith("I;16"):
        return (x / 257.0).astype(np.float32)
    if mode == "F" and lo >= 0 and hi <= 1:
        return (x * 255.0).astype(np.float32)
    if lo >= 0 and hi <= 255:
        return x.astype(np.float32)
    if lo >= 0 and hi <= 65535:
        return (x / 257.0).astype(np.float32)
    return ((x - lo) * (255.0 / (hi - lo))).astype(np.float32) if hi > lo else np.zeros_like(x, np.float32)


def to_gray(img: Image.Image, max_side: int | None = None) -> np.ndarray:
    """Grayscale float array in [0, 255]; transparent pixels count as background (white).

    With ``max_side``, a picture with a longer side is first reduced by a whole factor (each pixel
    the mean of a factor × factor box) to at most ``max_side`` a side, in PIL, before any array is
    made. A smaller picture is untouched.
    """
    factor = reduction(img.size, max_side)
    if img.mode in _WIDE_MODES:
        mode = img.mode
        if factor > 1:  # PIL reduces no 16-bit mode; as float every value is kept
            img = img.convert("F").reduce(factor)
        return _wide_to_gray(np.asarray(img, dtype=np.float64), mode)
    try:
        if img.getbands()[-1] in ("A", "a") or "transparency" in img.info:
            if factor > 1:  # PIL averages LA and RGBA premultiplied: a transparent pixel's colour weighs nothing
                img = (img if img.mode in ("LA", "RGBA") else img.convert("RGBA")).reduce(factor)
            rgba = img if img.mode == "RGBA" else img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        elif factor > 1:
            img = img.convert("L").reduce(factor)
        return np.asarray(img.convert("L"), dtype=np.float32)
    except (ValueError, OSError) as exc:  # a mode PIL cannot turn into gray (LAB, HSV...)
        raise ValueError(f"image mode {img.mode} cannot be converted to gray ({exc}); "
                         "save it as an RGB or grayscale PNG") from None


def on_black(gray: np.ndarray) -> np.ndarray:
    """Invert a light-background picture, then subtract the background level (clipped at 0)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray, border = 255.0 - gray, 255.0 - border
    return np.clip(gray - np.median(border), 0, None)


def bounding_box(gray: np.ndarray, threshold: float) -> tuple[slice, slice] | None:
    """Rows and columns holding a pixel above ``threshold``; None when there is none."""
    ink = gray > threshold
    # Rows and columns with any ink, not np.nonzero: that would hold two 8-byte indices per ink pixel.
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if len(rows) == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def resize_longer_side(crop: np.ndarray, side: int) -> np.ndarray:
    """``crop`` (float, 0–255) scaled so its longer side is ``side`` pixels, aspect kept (Lanczos)."""
    h, w = crop.shape
    factor = side / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    return np.asarray(Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(
        (new_w, new_h), Image.Resampling.LANCZOS), dtype=np.float32)


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


def fit_square(img: np.ndarray, size: int) -> np.ndarray:
    """One uint8 image ``[H, W]`` or ``[H, W, 3]`` → ``size``×``size``, aspect kept, centred on black."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    factor = size / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    scaled = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.Resampling.LANCZOS))
    canvas = np.zeros((size, size, *img.shape[2:]), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top: top + new_h, left: left + new_w] = scaled
    return canvas


def picture_array(img: Image.Image, channels: int) -> np.ndarray:
    """A decoded picture → uint8 ``[H, W]`` (gray) or ``[H, W, 3]``; transparent pixels count as black."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.asarray(img.convert("L" if channels == 1 else "RGB"))


def to_plain(img: Image.Image, *, size: int = 28, channels: int = 1) -> np.ndarray:
    """The ``plain`` pipeline, as ``mnistlab data add`` stores a picture: gray (or RGB, ``[3, size, size]``),
    transparent as black, the longer side ``size`` pixels, centred; nothing inverted or cropped."""
    out = fit_square(picture_array(img, channels), size)
    return out if channels == 1 else out.transpose(2, 0, 1).copy()


# Pipeline name (a data set registry entry's ``pipeline``) → the function, given the picture, the
# image side and the channels. The digit box keeps MNIST's proportion (20 of 28) at any side.
PIPELINES: dict[str, Callable[[Image.Image, int, int], np.ndarray]] = {
    "digit": lambda img, size, _: to_mnist(img, digit_box=max(1, round(size * 20 / 28)), size=size),
    "object": lambda img, size, _: to_fashion(img, size=size),
    "plain": lambda img, size, channels: to_plain(img, size=size, channels=channels),
}


def pictures_to_array(pictures: Picture | Sequence[Picture], pipeline: str, *, size: int = 28,
                      channels: int = 1) -> np.ndarray:
    """Pictures (PIL images or file paths; one or a list) → float32 ``[N, channels, size, size]``, pixels
    in [0, 1]: the input of the exported ONNX model. Under the digit and object pipelines a picture
    with nothing on it is a ``ValueError`` (a plain picture is taken as it is)."""
    many = isinstance(pictures, (list, tuple))
    arrays = []
    for picture in pictures if many else [pictures]:
        img = picture if isinstance(picture, Image.Image) else open_picture(picture)
        out = PIPELINES[pipeline](img, size, channels)
        if out.max() == 0 and pipeline != "plain":
            raise ValueError(f"{picture if not isinstance(picture, Image.Image) else 'a picture'}: "
                             "no ink found (the picture is blank or a single colour)")
        arrays.append(out if out.ndim == 3 else out[None])
    return np.stack(arrays).astype(np.float32) / np.float32(255.0)
