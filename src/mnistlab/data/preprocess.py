"""Any picture of a digit → the 28×28 uint8 image an MNIST model expects.

    >>> from PIL import Image
    >>> img = Image.new("L", (200, 120), color=255)   # a blank white page
    >>> to_mnist(img).shape
    (28, 28)

The steps copy how MNIST itself was made: grayscale; invert when the background is light (MNIST
digits are white on black); crop to the ink; scale the digit so its longer side is 20 pixels;
paste it into a 28×28 canvas so that its centre of mass sits at the centre. ``mnistlab predict``
and the HTTP service share :func:`image_to_mnist` (decode safely, then :func:`to_mnist`, refusing
a picture with no ink), so a drawing is treated the same everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data.images import ImageRejected, decode_file, decode_image, read_file

# Ink fainter than this (out of 255) above the background is noise (JPEG ringing, paper grain),
# not a digit: stretching it to full white would invent one.
MIN_CONTRAST = 16


def load_image(path: str | Path, notes: list[str] | None = None) -> Image.Image:
    """Open ``path`` safely (see :mod:`mnistlab.data.images`), or raise a one-line :class:`UserError`.

    Notes (an animated file's first frame was used) are appended to ``notes``, or printed on
    stderr when ``notes`` is None.
    """
    decoded = decode_file(path)
    if notes is None:
        for note in decoded.notes:
            print(f"warning: {note}", file=sys.stderr)
    else:
        notes.extend(decoded.notes)
    return decoded.image


def image_to_mnist(data: bytes, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """Untrusted image bytes → (28×28 uint8 MNIST-style array, notes): THE preprocessing of
    ``mnistlab predict`` and of the HTTP service. A picture with no ink is an :class:`ImageRejected`."""
    decoded = decode_image(data, name=name)
    return mnist_or_blank_error(decoded.image, name), decoded.notes


def file_to_mnist(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """:func:`image_to_mnist` of a file (its size checked before it is read)."""
    return image_to_mnist(read_file(path), name=str(path))


def mnist_or_blank_error(img: Image.Image, name: str = "image") -> np.ndarray:
    """:func:`to_mnist`, refusing a picture with no ink rather than predicting a blank canvas."""
    out = to_mnist(img)
    if out.max() == 0:
        raise ImageRejected(f"{name}: no ink found (the picture is blank or a single colour); "
                            "give a picture of a digit", "blank")
    return out


# PIL modes holding more than 8 bits a pixel; converting them to "L" clips, so they are rescaled.
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _wide_to_gray(img: Image.Image) -> np.ndarray:
    """16-bit, 32-bit and float pictures → [0, 255] by their range (not clipped to white)."""
    x = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(x.min()), float(x.max())
    if img.mode.startswith("I;16"):
        return (x / 257.0).astype(np.float32)
    if img.mode == "F" and lo >= 0 and hi <= 1:
        return (x * 255.0).astype(np.float32)
    if lo >= 0 and hi <= 255:
        return x.astype(np.float32)
    if lo >= 0 and hi <= 65535:
        return (x / 257.0).astype(np.float32)
    return ((x - lo) * (255.0 / (hi - lo))).astype(np.float32) if hi > lo else np.zeros_like(x, np.float32)


def _to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale float array in [0, 255]; transparent pixels count as background."""
    if img.mode in _WIDE_MODES:
        return _wide_to_gray(img)
    try:
        if img.getbands()[-1] in ("A", "a") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        return np.asarray(img.convert("L"), dtype=np.float32)
    except (ValueError, OSError) as exc:  # a mode PIL cannot turn into gray (LAB, HSV...)
        raise ImageRejected(f"image mode {img.mode} cannot be converted to gray ({exc}); "
                            "save it as an RGB or grayscale PNG", "decode") from None


def to_mnist(img: Image.Image, *, digit_box: int = 20, size: int = 28) -> np.ndarray:
    """Convert ``img`` to a ``size``×``size`` uint8 array, white digit on black, MNIST-centred."""
    gray = _to_gray(img)
    # The border is mostly background: if it is light, the picture is dark ink on paper.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray, border = 255.0 - gray, 255.0 - border
    gray = np.clip(gray - np.median(border), 0, None)  # paper that is not pure white → 0
    if gray.max() < MIN_CONTRAST:
        return np.zeros((size, size), dtype=np.uint8)
    gray = gray * (255.0 / gray.max())
    ys, xs = np.nonzero(gray > 0.1 * 255)
    if len(ys) == 0:
        return np.zeros((size, size), dtype=np.uint8)
    crop = gray[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape
    factor = digit_box / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    digit = np.asarray(
        Image.fromarray(crop.astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    canvas = np.zeros((size, size), dtype=np.float32)
    yy, xx = np.indices(digit.shape)
    total = max(float(digit.sum()), 1e-6)
    cy, cx = (yy * digit).sum() / total, (xx * digit).sum() / total
    top, left = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    top = min(max(top, 0), size - new_h)
    left = min(max(left, 0), size - new_w)
    canvas[top: top + new_h, left: left + new_w] = digit
    return np.clip(canvas, 0, 255).astype(np.uint8)
