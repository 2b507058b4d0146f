"""Test-time augmentation (TTA): a prediction averaged over an image and its one-pixel shifts.

    >>> import numpy as np
    >>> image = np.zeros((1, 3, 3), np.uint8); image[0, 1, 1] = 255
    >>> shift_images(image, 1, 0)[0].tolist()          # one row down; the uncovered top row is black
    [[0, 0, 0], [0, 0, 0], [0, 255, 0]]
    >>> len(SHIFTS), SHIFTS[0]                         # the image itself, then its 8 neighbours
    (9, (0, 0))
    >>> blind = lambda x: np.tile([[2.0, 0.0]], (len(x), 1))   # a model that ignores its input
    >>> np.allclose(tta_logits(blind, image), np.log([[0.8808, 0.1192]]), atol=1e-4)
    True

Only translations, never flips or rotations by 180°: a mirrored 2 is not a 2. The views' softmax
probabilities are averaged (as an ensemble's members are, :func:`~mnistlab.ensemble.combine.ensemble_logits`)
and returned as log-probabilities, so every metric, calibration and ensemble that reads logits
reads TTA logits unchanged. :func:`tta_logits` wraps any function from an image batch to logits:
the per-run predictor of :mod:`mnistlab.inference` (uint8 images, whatever framework trained the
run, ensembles too; black is 0) or a model on normalised images (black is ``-mean / std``, the
value :func:`mnistlab.training.loop.make_augment` fills borders with). It costs ``len(shifts)``
forward passes per image, which is why ``mnistlab evaluate --tta auto`` keeps it only where it
raises validation accuracy (:func:`validation_choice`), and records its time.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mnistlab.ensemble.combine import ensemble_logits
from mnistlab.errors import UserError
from mnistlab.evaluation.metrics import accuracy

MODES = ("off", "shifts", "auto")  # no TTA; TTA on validation and test; TTA if it wins on validation
# (dy, dx) in pixels: the image first, then the 4 edge and the 4 corner neighbours.
SHIFTS: tuple[tuple[int, int], ...] = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
VIEWS_PER_CALL = 1024  # images (views) per call of the wrapped function: bounds its memory


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a one-line :class:`UserError`."""
    if mode not in MODES:
        raise UserError(f"--tta {mode!r}: choose one of {', '.join(MODES)} (off is the default)")
    return mode


def _span(d: int, n: int) -> tuple[slice, slice]:
    """(destination, source) slices of one axis of length ``n`` moved by ``d`` pixels."""
    return (slice(d, n), slice(0, n - d)) if d >= 0 else (slice(0, n + d), slice(-d, n))


def shift_images(images: np.ndarray, dy: int, dx: int, fill: float = 0) -> np.ndarray:
    """``images [..., H, W]`` moved ``dy`` rows down and ``dx`` columns right; uncovered pixels are ``fill``.

    Exact (whole pixels, no interpolation); pass the value of a black pixel in the images' scale.
    """
    h, w = images.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) leaves nothing of a {h}×{w} image")
    out = np.full_like(images, fill)
    (rows_to, rows_from), (cols_to, cols_from) = _span(dy, h), _span(dx, w)
    out[..., rows_to, cols_to] = images[..., rows_from, cols_from]
    return out


def tta_logits(predict: Callable[[np.ndarray], Any], images: np.ndarray, *,
               shifts: Sequence[tuple[int, int]] = SHIFTS, fill: float = 0,
               views_per_call: int = VIEWS_PER_CALL) -> np.ndarray:
    """Log of the mean softmax of ``predict`` over ``images`` shifted by each of ``shifts``: ``[N, classes]``.

    ``predict`` maps a batch shaped like ``images`` to logits; it is called on at most
    ``views_per_call`` views at a time (a chunk of images × every shift), so memory stays bounded.
    """
    if not shifts:
        raise ValueError("TTA needs at least one shift")
    chunk = max(1, views_per_call // len(shifts))
    out = []
    for start in range(0, len(images), chunk):
        x = images[start: start + chunk]
        views = np.concatenate([shift_images(x, dy, dx, fill) for dy, dx in shifts])
        logits = np.asarray(predict(views)).reshape(len(shifts), len(x), -1)
        out.append(ensemble_logits(list(logits)))
    return np.concatenate(out) if out else np.asarray(predict(images), dtype=np.float32)


def validation_choice(mode: str, predict: Callable[[np.ndarray], Any], val_x: np.ndarray,
                      val_y: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(validation logits, the record of the choice) for ``mode``; decided on validation alone.

    ``off`` computes plain logits only. Otherwise both are computed and their accuracies recorded;
    ``shifts`` keeps TTA, ``auto`` keeps it only when its validation accuracy is strictly higher
    (a tie keeps the cheaper plain prediction). The record's ``used`` then tells how to score test.
    """
    check_mode(mode)
    plain = np.asarray(predict(val_x))
    if mode == "off":
        return plain, {"mode": mode, "used": False, "views": 1}
    tta = tta_logits(predict, val_x)
    acc_plain, acc_tta = accuracy(plain, val_y), accuracy(tta, val_y)
    used = mode == "shifts" or acc_tta > acc_plain
    record = {"mode": mode, "used": used, "views": len(SHIFTS) if used else 1, "shifts": [list(s) for s in SHIFTS],
              "val_accuracy_plain": acc_plain, "val_accuracy_tta": acc_tta}
    return (tta if used else plain), record


def note(record: dict[str, Any], seconds: float) -> str:
    """The one stderr line saying what was chosen, on what evidence, and at what cost."""
    chosen = f"TTA on ({record['views']} views: ±1 px shifts)" if record["used"] else "TTA off"
    why = {"auto": "chosen on validation", "shifts": "asked for"}[record["mode"]]
    return (f"tta {record['mode']}: {chosen}, {why}; validation accuracy {record['val_accuracy_plain']:.4f} plain, "
            f"{record['val_accuracy_tta']:.4f} with TTA; evaluate took {seconds:.1f} s")
