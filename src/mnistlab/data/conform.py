"""Images of any layout, type and size → the uint8 arrays a data set stores, and the picture pipeline to use.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((5, 32, 32, 3))          # float NHWC colour, 32×32
    >>> conform_array(x, size=28, channels=1, name="x.npz").shape
    (5, 28, 28)
    >>> conform_array((x * 255).astype(np.uint8), size=32, channels=3, name="x.npz").shape   # stored NCHW
    (5, 3, 32, 32)
    >>> fit_square(np.full((10, 20), 255, np.uint8), 8)[:, 0].tolist()   # 20 wide → 8 wide; rows padded
    [0, 0, 255, 255, 255, 255, 0, 0]

Every image is stored ``size``×``size``: a picture of another shape is scaled so its longer side
is ``size`` (aspect kept, Lanczos) and centred on black. Gray → colour repeats the gray; colour →
gray weighs R, G, B as PIL's ``L`` mode does (ITU-R 601-2), so an array and a picture of the same
image give the same pixels.
"""

from __future__ import annotations

import numpy as np

from mnistlab.data.pipeline import fit_square
from mnistlab.errors import UserError

_LUMA = np.array([299, 587, 114], dtype=np.float64) / 1000


def _nhwc(x: np.ndarray, name: str) -> np.ndarray:
    """(N,H,W), (N,H,W,C) or (N,C,H,W) → (N,H,W,C); C of 1, 3 or 4 (alpha dropped)."""
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise UserError(f"{name}: images of shape {list(x.shape)}; give (N,H,W), (N,H,W,C) or (N,C,H,W) arrays")
    if x.shape[-1] in (1, 3, 4):
        out = x
    elif x.shape[1] in (1, 3, 4):
        out = x.transpose(0, 2, 3, 1)
    else:
        raise UserError(f"{name}: images of shape {list(x.shape)} have no channel axis of 1, 3 or 4; "
                        "give (N,H,W), (N,H,W,C) or (N,C,H,W) arrays")
    return out[..., :3] if out.shape[-1] == 4 else out


def to_uint8(x: np.ndarray, name: str) -> np.ndarray:
    """uint8 as is; other integers in 0..255; floats in [0, 1] (× 255) or [0, 255], rounded."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        if x.size and (x.min() < 0 or x.max() > 255):
            raise UserError(f"{name}: integer pixels outside 0..255 (from {x.min()} to {x.max()}); "
                            "give values 0..255, or floats in [0, 1]")
        return x.astype(np.uint8)
    if x.dtype.kind != "f":
        raise UserError(f"{name}: pixels of dtype {x.dtype}; give uint8 (0..255) or float (0..1) arrays")
    if not np.isfinite(x).all():
        raise UserError(f"{name}: pixels that are NaN or infinite; give finite values 0..255 or 0..1")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    if lo < 0 or hi > 255:
        raise UserError(f"{name}: float pixels outside [0, 255] (from {lo:g} to {hi:g}); scale them to [0, 1]")
    return np.rint(x * 255 if hi <= 1.0 else x).astype(np.uint8)


def conform_array(x: np.ndarray, *, size: int, channels: int, name: str) -> np.ndarray:
    """Images in any accepted layout and type → uint8 ``[N, size, size]`` (gray) or ``[N, 3, size, size]``."""
    x = to_uint8(_nhwc(x, name), name)
    out = np.empty((len(x), size, size, channels), dtype=np.uint8)
    for i, img in enumerate(x):
        if img.shape[-1] != channels:
            img = np.rint(img @ _LUMA).astype(np.uint8)[..., None] if channels == 1 else np.repeat(img, 3, axis=-1)
        out[i] = fit_square(img if channels == 3 else img[..., 0], size).reshape(size, size, channels)
    return out[..., 0] if channels == 1 else out.transpose(0, 3, 1, 2).copy()


def resize_note(x: np.ndarray, size: int, name: str) -> list[str]:
    """A note for stderr when the images of array ``x`` are not ``size``×``size`` (empty when they are)."""
    h, w = _nhwc(x, name).shape[1:3]
    if (h, w) == (size, size):
        return []
    return [f"{name}: {len(x)} images of {h}×{w} were resized to {size}×{size} (aspect kept, padded with black)"]


def for_display(image: np.ndarray) -> np.ndarray:
    """One stored image as matplotlib shows it: gray ``[H, W]`` as it is, colour ``[3, H, W]`` → ``[H, W, 3]``.

    >>> for_display(np.zeros((3, 8, 8), np.uint8)).shape, for_display(np.zeros((8, 8), np.uint8)).shape
    ((8, 8, 3), (8, 8))
    """
    image = np.asarray(image)
    return image.transpose(1, 2, 0) if image.ndim == 3 else image


def resized_count(shapes: list[tuple[int, int]], size: int) -> int:
    """How many of the images of ``shapes`` (H, W) are not already ``size``×``size``."""
    return sum(1 for s in shapes if tuple(s) != (size, size))


def guess_pipeline(x: np.ndarray) -> str:
    """The picture pipeline that matches how these stored images look.

    ``digit`` when gray images on black keep a clear frame (MNIST's digits sit in a 20-pixel box
    inside 28), ``object`` when gray objects on black reach the edge (Fashion-MNIST's fill the
    longer side), ``plain`` for colour or light backgrounds: pictures are then only resized.
    """
    if x.ndim == 4 or not len(x):
        return "plain"
    sample = x[:: max(1, len(x) // 2000)]
    edge = np.concatenate([sample[:, 0], sample[:, -1], sample[:, :, 0], sample[:, :, -1]], axis=1)
    if np.median(edge) > 32:  # a light background: not drawn like MNIST or Fashion-MNIST
        return "plain"
    frame = max(1, round(x.shape[-1] / 14))  # 2 pixels of 28
    rim = np.ones(x.shape[1:], dtype=bool)
    rim[frame:-frame, frame:-frame] = False
    touching = float((sample[:, rim] > 64).any(axis=1).mean())
    return "digit" if touching < 0.2 else "object"
