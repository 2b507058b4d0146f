"""Any picture of a digit → the 28×28 uint8 image an MNIST model expects.

    >>> from PIL import Image
    >>> img = Image.new("L", (200, 120), color=255)   # a blank white page
    >>> to_mnist(img).shape
    (28, 28)

The steps copy how MNIST itself was made: grayscale; invert when the background is light (MNIST
digits are white on black); crop to the ink; scale the digit so its longer side is 20 pixels;
paste it into a 28×28 canvas so that its centre of mass sits at the centre. ``mnistlab predict``
and the HTTP service share this function, so a drawing is treated the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnistlab.errors import UserError


def load_image(path: str | Path) -> Image.Image:
    """Open ``path`` as a PIL image, or raise a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not a readable image ({exc.__class__.__name__}); give a PNG or JPEG") from None
    return img


def _to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale float array in [0, 255]; transparent pixels count as background."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.float32)


def to_mnist(img: Image.Image, *, digit_box: int = 20, size: int = 28) -> np.ndarray:
    """Convert ``img`` to a ``size``×``size`` uint8 array, white digit on black, MNIST-centred."""
    gray = _to_gray(img)
    # The border is mostly background: if it is light, the picture is dark ink on paper.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:
        gray, border = 255.0 - gray, 255.0 - border
    gray = np.clip(gray - np.median(border), 0, None)  # paper that is not pure white → 0
    if gray.max() <= 0:
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
