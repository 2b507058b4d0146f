"""Test-time augmentation (TTA): a prediction averaged over several views of an image.

    >>> import numpy as np
    >>> image = np.zeros((1, 3, 3), np.uint8); image[0, 1, 1] = 255
    >>> shift_images(image, 1, 0)[0].tolist()          # one row down; the uncovered top row is black
    [[0, 0, 0], [0, 0, 0], [0, 255, 0]]
    >>> len(VIEW_SETS["shifts"]), VIEW_SETS["flip"]    # the image first, then the others
    (9, ((0, 0, False), (0, 0, True)))
    >>> blind = lambda x: np.tile([[2.0, 0.0]], (len(x), 1))   # a model that ignores its input
    >>> np.allclose(tta_logits(blind, image), np.log([[0.8808, 0.1192]]), atol=1e-4)
    True

Two sets of views (:data:`VIEW_SETS`): ``shifts``, the image and its 8 one-pixel shifts, for
any data set; ``flip``, the image and its left-right mirror, only for a data set whose registry
entry says a mirror shows the same class (``mirrors``: a shoe is a shoe either way, a mirrored 2
is not a 2). The views' softmax probabilities are averaged (as an ensemble's members are,
:func:`~mnistlab.maths.combine.ensemble_logits`) and returned as log-probabilities, so every
metric, calibration and ensemble that reads logits reads TTA logits unchanged. :func:`tta_logits`
wraps any function from an image batch to logits: the per-run predictor of
:mod:`mnistlab.frameworks.inference` (uint8 images, whatever framework trained the run, ensembles too; black
is 0) or a model on normalised images (black is ``-mean / std``, the value
:func:`mnistlab.training.loop.make_augment` fills borders with). It costs one forward pass per view
and image, which is why ``mnistlab evaluate --tta auto`` keeps a set only where it raises
validation accuracy (:func:`validation_choice`), and records its time.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mnistlab.errors import UserError
from mnistlab.maths.combine import ensemble_logits
from mnistlab.maths.metrics import accuracy

# (dy, dx) in pixels: the image first, then the 4 edge and the 4 corner neighbours.
SHIFTS: tuple[tuple[int, int], ...] = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))
# A view is (dy, dx, mirrored): shifted dy rows down and dx columns right, then mirrored left-right or not.
View = tuple[int, int, bool]
VIEW_SETS: dict[str, tuple[View, ...]] = {
    "shifts": tuple((dy, dx, False) for dy, dx in SHIFTS),
    "flip": ((0, 0, False), (0, 0, True)),
}
DESCRIPTIONS = {"shifts": "the image and its one-pixel shifts", "flip": "the image and its left-right mirror"}
MODES = ("off", *VIEW_SETS, "auto")  # no TTA; one set on validation and test; the best set if it wins on validation
VIEWS_PER_CALL = 1024  # images (views) per call of the wrapped function: bounds its memory


def allowed_sets(mirrors: bool) -> tuple[str, ...]:
    """The view sets that suit a data set, cheapest first: ``flip`` only where a mirror keeps the class.

    >>> allowed_sets(False), allowed_sets(True)
    (('shifts',), ('flip', 'shifts'))
    """
    sets = sorted(VIEW_SETS, key=lambda name: len(VIEW_SETS[name]))
    return tuple(name for name in sets if mirrors or not any(mirrored for _, _, mirrored in VIEW_SETS[name]))


def check_mode(mode: str, mirrors: bool = True, subject: str = "image") -> str:
    """``mode`` if it is one of :data:`MODES` and suits the data set, else a one-line :class:`UserError`."""
    if mode not in MODES:
        raise UserError(f"--tta {mode!r}: choose one of {', '.join(MODES)} (off is the default)")
    if mode in VIEW_SETS and mode not in allowed_sets(mirrors):
        choices = ", ".join(("off", *allowed_sets(mirrors), "auto"))
        raise UserError(f"--tta {mode}: a mirrored {subject} is not the same {subject}, so this run's data set "
                        f"takes {choices}")
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


def view_images(images: np.ndarray, view: View, fill: float = 0) -> np.ndarray:
    """``images [..., H, W]`` shifted by ``view``'s (dy, dx), then mirrored left-right if it says so."""
    dy, dx, mirrored = view
    out = shift_images(images, dy, dx, fill) if (dy, dx) != (0, 0) else images
    return np.ascontiguousarray(out[..., ::-1]) if mirrored else out


def tta_logits(predict: Callable[[np.ndarray], Any], images: np.ndarray, *,
               views: Sequence[View] = VIEW_SETS["shifts"], fill: float = 0,
               views_per_call: int = VIEWS_PER_CALL) -> np.ndarray:
    """Log of the mean softmax of ``predict`` over each of ``views`` of ``images``: ``[N, classes]``.

    ``predict`` maps a batch shaped like ``images`` to logits; it is called on at most
    ``views_per_call`` views at a time (a chunk of images × every view), so memory stays bounded.
    """
    if not views:
        raise ValueError("TTA needs at least one view")
    chunk = max(1, views_per_call // len(views))
    out = []
    for start in range(0, len(images), chunk):
        x = images[start: start + chunk]
        batch = np.concatenate([view_images(x, view, fill) for view in views])
        logits = np.asarray(predict(batch)).reshape(len(views), len(x), -1)
        out.append(ensemble_logits(list(logits)))
    return np.concatenate(out) if out else np.asarray(predict(images), dtype=np.float32)


def validation_choice(mode: str, predict: Callable[[np.ndarray], Any], val_x: np.ndarray, val_y: np.ndarray, *,
                      mirrors: bool = False,
                      candidates: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(validation logits, the record of the choice) for ``mode``; decided on validation alone.

    ``off`` computes plain logits only. A view set's name (``shifts``, ``flip``) is used as asked.
    ``auto`` tries ``candidates`` (default: every set :func:`allowed_sets` gives the data set) and
    keeps the one with the highest validation accuracy only if it is strictly higher than the plain
    prediction's (ties go to the cheaper). The record's ``used`` and ``view_set`` then tell how to
    score test; ``candidates`` holds every set's validation accuracy.
    """
    check_mode(mode, mirrors)
    plain = np.asarray(predict(val_x))
    if mode == "off":
        return plain, {"mode": mode, "used": False, "views": 1}
    tried = [mode] if mode != "auto" else list(candidates if candidates is not None else allowed_sets(mirrors))
    for name in tried:
        check_mode(name, mirrors)
    scored = {name: tta_logits(predict, val_x, views=VIEW_SETS[name]) for name in tried}
    accs = {name: accuracy(logits, val_y) for name, logits in scored.items()}
    acc_plain = accuracy(plain, val_y)
    best = max(tried, key=lambda name: (accs[name], -len(VIEW_SETS[name])))
    used = mode != "auto" or accs[best] > acc_plain
    record = {"mode": mode, "used": used, "views": len(VIEW_SETS[best]) if used else 1, "view_set": best,
              "description": DESCRIPTIONS[best], "view_list": [list(v) for v in VIEW_SETS[best]],
              "val_accuracy_plain": acc_plain, "val_accuracy_tta": accs[best], "candidates": accs}
    return (scored[best] if used else plain), record


def scorer(record: dict[str, Any], predict: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
    """How to score the test split after :func:`validation_choice`: ``predict`` itself, or its TTA."""
    if not record["used"]:
        return predict
    views = VIEW_SETS[record["view_set"]]
    return lambda images: tta_logits(predict, images, views=views)


def note(record: dict[str, Any], seconds: float) -> str:
    """The one stderr line saying what was chosen, on what evidence, and at what cost."""
    chosen = f"TTA on ({record['views']} views: {record['description']})" if record["used"] else "TTA off"
    why = "chosen on validation" if record["mode"] == "auto" else "asked for"
    return (f"tta {record['mode']}: {chosen}, {why}; validation accuracy {record['val_accuracy_plain']:.4f} plain, "
            f"{record['val_accuracy_tta']:.4f} with TTA ({record['view_set']}); evaluate took {seconds:.1f} s")
