"""Request bodies → uint8 images ``[N, 28, 28]``; every mistake an :class:`ApiError` naming the field.

    >>> images, single = pixels_to_images([0] * 784, "pixels", max_batch=256)
    >>> images.shape, single
    ((1, 28, 28), True)
    >>> pixels_to_images([[0, True]], "pixels", max_batch=256)
    Traceback (most recent call last):
    ...
    mnistlab.serve.parsing.ApiError: pixels[0][1]: Input should be a valid number

Numbers are checked strictly (pydantic, in Rust): booleans, strings, nulls, NaN and values out of
range are refused, never coerced. Image files go through ``mnistlab predict``'s own
preprocessing for the served run's data set (:func:`mnistlab.data.preprocess.image_to_input`), so
a drawing or a photo is treated the same by the CLI and the service.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError

from mnistlab.data.images import ImageRejected
from mnistlab.data.preprocess import image_to_input

SIDE, PIXELS = 28, 28 * 28
MAX_DEPTH = 4
# ImageRejected.kind → HTTP status: not an image type 415; too large 413; damaged or blank 422.
IMAGE_STATUS = {"type": 415, "size": 413, "decode": 422, "blank": 422}


class ApiError(Exception):
    """A client mistake: HTTP ``status`` and a one-line ``message`` (``{"error": message}``), and
    ``headers`` for the answer (``Retry-After`` of a 503)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def header_int(value: str | bytes | None) -> int | None:
    """A header's value as a whole number of 1 to 18 ASCII digits; None when it is anything else.

        >>> header_int("123"), header_int(b"7"), header_int("\u00b2"), header_int("9" * 5000)
        (123, 7, None, None)

    ``str.isdigit()`` says yes to "²" and "٣", which ``int()`` then refuses, and ``int()`` refuses
    more than 4,300 digits: each was a 500. No length or count here needs 19 digits.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")  # as the HTTP servers pass header values on
    if value is None or not 0 < len(value) <= 18 or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def parse_json(body: bytes) -> Any:
    """JSON text → Python; not JSON (or nested past Python's recursion limit) is a 422."""
    if not body.strip():
        raise ApiError(422, "body: empty; send JSON such as {\"pixels\": [...784 numbers]}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(422, f"body: not valid JSON ({str(exc).splitlines()[0][:100]})") from None


@functools.lru_cache(maxsize=None)
def _adapter(depth: int, hi: float, integers: bool) -> TypeAdapter:
    kind = int if integers else float
    t: Any = Annotated[kind, Field(strict=True, ge=0, le=hi, allow_inf_nan=False)] if not integers else \
        Annotated[int, Field(strict=True, ge=0, le=int(hi))]
    for _ in range(depth):
        t = list[t]
    return TypeAdapter(t)


def _where(field: str, loc: tuple) -> str:
    return field + "".join(f"[{i}]" if isinstance(i, int) else f".{i}" for i in loc)


def numbers(value: Any, field: str, *, hi: float, integers: bool = False, may_hold_bools: bool = True) -> np.ndarray:
    """A nested list of numbers in ``[0, hi]`` → float32 array (not ragged); else a 422 naming the element.

    ``may_hold_bools=False`` (the request's bytes hold no ``true``/``false`` token) allows the fast
    path: numpy converts and checks the whole array at once; anything it cannot vouch for goes
    through the strict element-by-element check, which also names the bad element.
    """
    depth, v = 0, value
    while isinstance(v, list):
        if not v:
            raise ApiError(422, f"{field}: an empty list where numbers were expected")
        v, depth = v[0], depth + 1
    if depth == 0:
        raise ApiError(422, f"{field}: must be a list of numbers, got {type(value).__name__}")
    if depth > MAX_DEPTH:
        raise ApiError(422, f"{field}: nested {depth} levels deep; at most {MAX_DEPTH}")
    if not may_hold_bools:
        fast = _fast_numbers(value, depth, hi, integers)
        if fast is not None:
            return fast
    try:
        checked = _adapter(depth, hi, integers).validate_python(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ApiError(422, f"{_where(field, tuple(err['loc']))}: {err['msg']}") from None
    try:
        return np.asarray(checked, dtype=np.float32)
    except ValueError:
        raise ApiError(422, f"{field}: rows of different lengths; every image is 28×28") from None


def _fast_numbers(value: Any, depth: int, hi: float, integers: bool) -> np.ndarray | None:
    """The whole array at once, or None when numpy cannot vouch for every element (then the strict path runs)."""
    try:
        x = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if x.ndim != depth or x.dtype.kind not in ("iu" if integers else "iuf"):
        return None  # ragged, strings, nulls, huge integers (object arrays): let the strict path explain
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return None
    if x.size and (x.min() < 0 or x.max() > hi):
        return None
    return x.astype(np.float32)


def has_bool_token(body: bytes) -> bool:
    """Whether JSON ``body`` may hold a boolean (a ``true``/``false`` token, perhaps inside a string)."""
    return b"true" in body or b"false" in body


def pixels_to_images(value: Any, field: str, *, max_batch: int, may_hold_bools: bool = True) -> tuple[np.ndarray, bool]:
    """``{"pixels": ...}`` of ``/v1/predict`` → (uint8 ``[N, 28, 28]``, whether it was one image).

    One image: 784 numbers or 28 rows of 28; a batch: a list of either. Values 0–255, already in the data set's form (light object on black).
    """
    x = numbers(value, field, hi=255, may_hold_bools=may_hold_bools)
    if x.shape in ((PIXELS,), (SIDE, SIDE)):
        return np.rint(x).astype(np.uint8).reshape(1, SIDE, SIDE), True
    if x.ndim in (2, 3) and x.shape[1:] in ((PIXELS,), (SIDE, SIDE)):
        check_batch(len(x), field, max_batch, status=413)
        return np.rint(x).astype(np.uint8).reshape(-1, SIDE, SIDE), False
    raise ApiError(422, f"{field}: shape {list(x.shape)} is not one image (784 or 28×28) or a batch of them")


def check_batch(n: int, field: str, max_batch: int, status: int) -> None:
    if n > max_batch:
        raise ApiError(status, f"{field}: a batch of {n} images is over the limit of {max_batch}; split it")


def image_bytes_to_images(data: bytes, name: str, dataset: str = "mnist") -> tuple[np.ndarray, list[str]]:
    """An uploaded picture → (uint8 ``[1, 28, 28]``, notes), through ``mnistlab predict``'s
    preprocessing for a model of ``dataset`` (the served run's)."""
    try:
        image, notes = image_to_input(data, dataset, name=name)
    except ImageRejected as exc:
        raise ApiError(IMAGE_STATUS[exc.kind], str(exc)) from None
    return image[None], notes
