"""Any decoded picture → a float gray array, light object on a black background: the first steps
every preprocessing pipeline shares (:mod:`mnistlab.data.preprocess`).

    >>> from PIL import Image
    >>> page = Image.new("L", (40, 30), color=250)             # light paper...
    >>> page.paste(10, (10, 10, 20, 20))                       # ...with a dark square on it
    >>> gray = on_black(to_gray(page))
    >>> float(gray[0, 0]), float(gray[15, 15])                 # paper → 0, ink → bright
    (0.0, 240.0)

The border of a picture is mostly background: when its median is light, the picture is dark ink
on paper (or a product photographed on white) and is inverted, because MNIST and Fashion-MNIST
both show a light object on black. The border's median is then taken as the background level and
subtracted, so paper that is not pure white becomes 0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistlab.data.images import ImageRejected, reduction

# Ink fainter than this (out of 255) above the background is noise (JPEG ringing, paper grain),
# not an object: stretching it to full white would invent one. Fashion-MNIST trimmed edges
# within 5% (13/255) of the corner colour; this is a little above that for JPEG noise.
MIN_CONTRAST = 16

# PIL modes holding more than 8 bits a pixel; converting them to "L" clips, so they are rescaled.
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _wide_to_gray(x: np.ndarray, mode: str) -> np.ndarray:
    """The values ``x`` of a 16-bit, 32-bit or float picture of ``mode`` → [0, 255] by their range (not clipped to white)."""
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
    made: the arrays then take memory by ``max_side``, not by the picture. A smaller picture is
    untouched.
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
        raise ImageRejected(f"image mode {img.mode} cannot be converted to gray ({exc}); "
                            "save it as an RGB or grayscale PNG", "decode") from None


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
