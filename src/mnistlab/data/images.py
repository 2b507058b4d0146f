"""Untrusted image bytes or files → a decoded PIL image, or a one-line :class:`ImageRejected`.

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("L", (40, 30), 255).save(buf, "PNG")
    >>> decoded = decode_image(buf.getvalue(), name="page.png")
    >>> decoded.image.size, decoded.notes
    ((40, 30), [])
    >>> decode_image(b"%!PS-Adobe-3.0 EPSF-3.0", name="x.eps")
    Traceback (most recent call last):
    ...
    mnistlab.data.images.ImageRejected: x.eps: not a readable image of an accepted type; give a PNG, JPEG, WebP, BMP, GIF or TIFF

Why each rule (pictures come from users and from the network, so they are data, never code):

- Only ``ACCEPTED_FORMATS`` are opened (``Image.open(..., formats=...)``): PIL would otherwise hand
  an EPS file to Ghostscript, an interpreter. SVG is not a PIL format and is refused the same way.
- The size the header declares is checked before a single pixel is decoded: at most ``MAX_SIDE``
  pixels a side and ``MAX_PIXELS`` in all (a 65-byte PNG can claim 60,000 × 60,000 and would
  need gigabytes). Files over ``MAX_FILE_BYTES`` are refused before they are read.
- Every decoding failure — PIL raises ``OSError``, ``SyntaxError``, ``ValueError``,
  ``EOFError``, ``DecompressionBombError`` and more for damaged files — becomes one line.
- EXIF orientation is applied (a phone photo is upright, as its viewer shows it); an animated
  image gives its first frame and a note says so (the CLI prints notes on stderr; the HTTP
  service returns them in ``warnings``).

Each refusal has a ``kind`` (``type``, ``size``, ``decode`` or ``blank``) that the HTTP service
maps to a status code: 415 for ``type``, 413 for ``size``, 422 for ``decode`` and ``blank``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mnistlab.data.pipeline import ACCEPTED_FORMATS, MAX_SIDE, load_upright
from mnistlab.errors import UserError

__all__ = ["ACCEPTED_FORMATS", "MAX_SIDE"]  # the exportable pipeline's limits, which callers read from here
ACCEPTED_TEXT = "a PNG, JPEG, WebP, BMP, GIF or TIFF"
MAX_PIXELS = MAX_SIDE * MAX_SIDE
MAX_FILE_BYTES = 32 * 1024 * 1024


class ImageRejected(UserError):
    """An image that cannot be used; ``kind`` is ``type``, ``size``, ``decode`` or ``blank``."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class DecodedImage:
    """A fully decoded image (first frame, upright) and notes worth telling the user."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)


def read_file(path: str | Path) -> bytes:
    """The bytes of ``path``, after checking it exists and is not over ``MAX_FILE_BYTES``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageRejected(f"{path}: {size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit; "
                            "give a smaller image", "size")
    return path.read_bytes()


def _open(data: bytes, name: str) -> Image.Image:
    with warnings.catch_warnings():
        # Our own limit (checked next) is lower than PIL's warning threshold: the warning is noise.
        warnings.simplefilter("ignore")  # incl. DecompressionBombWarning and TIFF metadata notes
        try:
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.DecompressionBombError:
            raise ImageRejected(f"{name}: declared size is over {MAX_SIDE}×{MAX_SIDE} pixels; "
                                "give a smaller image", "size") from None
        except UnidentifiedImageError:
            raise ImageRejected(f"{name}: not a readable image of an accepted type; give {ACCEPTED_TEXT}", "type") from None
        except Exception as exc:  # a header damaged in any way PIL can report
            raise ImageRejected(f"{name}: not a readable image ({_reason(exc)}); give {ACCEPTED_TEXT}",
                                "decode") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def decode_image(data: bytes, name: str = "image", *, max_side: int | None = None) -> DecodedImage:
    """Decode untrusted ``data`` (named ``name`` in messages) under the rules in the module docstring.

    ``max_side``: the caller will reduce the picture by :func:`~mnistlab.data.pipeline.reduction` to at most this many
    pixels a side, so a JPEG whose factor is 2, 4 or 8 is decoded at that scale already (the
    decoder's own scaling: a quarter of the memory and time at each step; other formats, and a
    factor of 3, decode in full).
    """
    if len(data) > MAX_FILE_BYTES:
        raise ImageRejected(f"{name}: {len(data):,} bytes is over the {MAX_FILE_BYTES:,}-byte limit", "size")
    img = _open(data, name)
    width, height = img.size
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageRejected(f"{name}: declared size {width}×{height} is over the {MAX_SIDE}×{MAX_SIDE} limit; "
                            "give a smaller image", "size")
    if width < 1 or height < 1:
        raise ImageRejected(f"{name}: declared size {width}×{height} holds no pixels; give a real image", "decode")
    notes = []
    try:
        if getattr(img, "is_animated", False):
            notes.append(f"{name}: animated image; only its first frame was used")
        img = load_upright(img, max_side)
    except ImageRejected:
        raise
    except Exception as exc:  # truncated data, a bad chunk, a broken palette: all the sender's problem
        raise ImageRejected(f"{name}: cannot decode the image ({_reason(exc)}); "
                            "check that the file is complete and not damaged", "decode") from None
    return DecodedImage(img, notes)


def decode_file(path: str | Path, *, max_side: int | None = None) -> DecodedImage:
    """:func:`decode_image` on a file's bytes (size checked before reading)."""
    return decode_image(read_file(path), name=str(path), max_side=max_side)
