"""Read and validate IDX files (the MNIST container format), gzip-compressed or raw.

This module only turns bytes into checked arrays; finding, fetching and checksumming whole data
sets is :mod:`mnistlab.data.store`'s job.

    >>> import gzip, struct
    >>> raw = struct.pack(">IIII", 0x00000803, 2, 3, 3) + bytes(18)
    >>> read_idx(gzip.compress(raw), expected_shape_tail=(3, 3)).shape
    (2, 3, 3)
    >>> sha256_hex(raw) == sha256_hex(gzip.compress(raw))  # hashes the decompressed bytes
    True

Every problem with a file raises :class:`~mnistlab.errors.DataError` with one line that names the
file, the problem and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "decompress", "read_bytes", "read_idx", "sha256_hex"]

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dims: [N, rows, cols]
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dim: [N]
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_FIX = "delete it or re-run 'mnistlab data fetch'"


def _label(source: str | Path | bytes | bytearray | memoryview, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, (str, Path)) else "<bytes>"


def decompress(data: bytes, name: str = "<bytes>") -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic (1f 8b), else unchanged.

    Detection is by content, not by file name: mirrors and users rename files freely.
    """
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt gzip stream ({exc}); {_FIX}") from None


def read_bytes(source: str | Path | bytes | bytearray | memoryview, *, name: str | None = None) -> bytes:
    """Read a path (or take bytes) and return the decompressed content."""
    label = _label(source, name)
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{label}: file not found; check the path or run 'mnistlab data fetch'") from None
        except OSError as exc:
            raise DataError(f"{label}: cannot read ({exc.strerror}); check its permissions") from None
    else:
        data = bytes(source)
    return decompress(data, label)


def sha256_hex(source: str | Path | bytes | bytearray | memoryview, *, name: str | None = None) -> str:
    """SHA-256 of the *decompressed* bytes, so gzip and raw copies of a file hash the same."""
    return hashlib.sha256(read_bytes(source, name=name)).hexdigest()


def parse_idx(data: bytes, name: str = "<bytes>", *, expected_shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate decompressed IDX bytes and return a read-only uint8 view of them (no copy)."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes); {_FIX}")
    magic = struct.unpack(">I", data[:4])[0]
    ndim = data[3]
    # The first two bytes are always zero; the third is the element type. mnistlab only ever
    # needs unsigned bytes, and 1 or 3 dims (labels or images).
    if data[:2] != b"\x00\x00" or data[2] != _UBYTE or ndim not in (1, 3):
        raise DataError(f"{name}: not an IDX file (bad magic 0x{magic:08x}); {_FIX}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{name}: truncated (header needs {header_len} bytes, found {len(data)}); {_FIX}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    if expected_shape_tail is not None and tuple(dims[1:]) != tuple(expected_shape_tail):
        raise DataError(
            f"{name}: unexpected shape {list(dims)} (expected [N, {', '.join(map(str, expected_shape_tail))}]); "
            f"{_FIX}"
        )
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header_len
    what = "pixels" if ndim == 3 else "labels"
    if found < expected:
        raise DataError(f"{name}: truncated (expected {expected} bytes of {what}, found {found}); {_FIX}")
    if found > expected:
        raise DataError(f"{name}: {found - expected} trailing bytes after {expected} bytes of {what}; {_FIX}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx(
    path_or_bytes: str | Path | bytes | bytearray | memoryview,
    *,
    expected_shape_tail: tuple[int, ...] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Read a gzip or raw IDX file (path or bytes) into a uint8 array of its declared shape.

    ``expected_shape_tail`` checks every dim after the first, e.g. ``(28, 28)`` for images or
    ``()`` for labels. The array is read-only (a view of the decompressed buffer); copy it before
    writing to it.
    """
    label = _label(path_or_bytes, name)
    return parse_idx(read_bytes(path_or_bytes, name=label), label, expected_shape_tail=expected_shape_tail)
