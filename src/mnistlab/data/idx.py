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
file, the problem and the fix. Nothing is read whole before its size is known to be right: a raw
file's size is compared with what its header declares, a gzip stream is decompressed in chunks
and stopped as soon as it goes past the declared size or ``max_bytes`` (a gzip bomb costs one
chunk of memory, not gigabytes).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "MAX_IDX_BYTES", "decompress", "read_bytes", "read_idx", "sha256_hex"]

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dims: [N, rows, cols]
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dim: [N]
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_FIX = "delete it or re-run 'mnistlab data fetch'"
MAX_IDX_BYTES = 256 * 2**20  # MNIST's largest file is 47 MB; the cap when the caller knows no size
_CHUNK = 1 << 20


def _label(source: str | Path | bytes | bytearray | memoryview, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, (str, Path)) else "<bytes>"


def _declared_size(head: bytes, name: str) -> int | None:
    """Total bytes the IDX header in ``head`` declares (None while ``head`` is too short to tell)."""
    if len(head) < 4:
        return None
    magic = struct.unpack(">I", head[:4])[0]
    if head[:2] != b"\x00\x00" or head[2] != _UBYTE or head[3] not in (1, 3):
        raise DataError(f"{name}: not an IDX file (bad magic 0x{magic:08x}); {_FIX}")
    header_len = 4 + 4 * head[3]
    if len(head) < header_len:
        return None
    dims = struct.unpack(f">{head[3]}I", head[4:header_len])
    return header_len + int(np.prod(dims, dtype=np.int64))


def _payload_problem(expected: int, found: int, ndim: int, name: str) -> None:
    """Raise when the payload after the header is not exactly the ``expected`` bytes."""
    what = "pixels" if ndim == 3 else "labels"
    if found < expected:
        raise DataError(f"{name}: truncated (expected {expected} bytes of {what}, found {found}); {_FIX}")
    if found > expected:
        raise DataError(f"{name}: {found - expected} trailing bytes after {expected} bytes of {what}; {_FIX}")


def _check_declared(declared: int, max_bytes: int, name: str) -> None:
    if declared > max_bytes:
        raise DataError(f"{name}: its header declares {declared} bytes, more than the {max_bytes} expected; {_FIX}")


def _gunzip_capped(data: bytes, name: str, max_bytes: int) -> bytes:
    """Inflate in chunks; stop one byte past the size the header declares (or ``max_bytes``)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # expects the gzip wrapper
    out, pending, limit = bytearray(), data, max_bytes
    try:
        while len(out) <= limit:  # one byte past the limit is enough for parse_idx to name it
            if inflater.eof:
                rest = inflater.unused_data
                if rest[:2] != _GZIP_MAGIC:
                    break  # end of the stream (what follows, if anything, is not gzip: ignored)
                inflater, pending = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS), rest  # next member
            elif not pending:
                raise DataError(f"{name}: corrupt gzip stream (it ends early); {_FIX}")
            out += inflater.decompress(pending, limit + 1 - len(out))  # never 0: that means "no limit"
            pending = inflater.unconsumed_tail
            declared = _declared_size(bytes(out[:16]), name)
            if declared is not None:
                _check_declared(declared, max_bytes, name)
                limit = declared
    except zlib.error as exc:
        raise DataError(f"{name}: corrupt gzip stream ({exc}); {_FIX}") from None
    return bytes(out)


def decompress(data: bytes, name: str = "<bytes>", *, max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic (1f 8b), else unchanged.

    Detection is by content, not by file name: mirrors and users rename files freely. At most
    ``max_bytes`` (or what the IDX header declares, when less) plus one byte are inflated.
    """
    if data[:2] != _GZIP_MAGIC:
        return data
    return _gunzip_capped(data, name, max_bytes)


def read_bytes(source: str | Path | bytes | bytearray | memoryview, *, name: str | None = None,
               max_bytes: int = MAX_IDX_BYTES) -> bytes:
    """Read a path (or take bytes) and return the decompressed content, sizes checked first.

    A raw file whose size differs from what its header declares is refused after reading only
    the header; the compressed size of a gzip file is capped at ``max_bytes`` too.
    """
    label = _label(source, name)
    if not isinstance(source, (str, Path)):
        return decompress(bytes(source), label, max_bytes=max_bytes)
    try:
        with open(source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(16)
            if head[:2] != _GZIP_MAGIC:
                declared = _declared_size(head, label)
                if declared is not None and declared != size:  # known from 16 bytes: the rest stays unread
                    _payload_problem(declared - 4 - 4 * head[3], size - 4 - 4 * head[3], head[3], label)
            if size > max_bytes + (_CHUNK if head[:2] == _GZIP_MAGIC else 0):
                raise DataError(f"{label}: {size} bytes, more than the {max_bytes} expected; {_FIX}")
            data = head + fh.read(size)  # bounded: size was checked above
    except FileNotFoundError:
        raise DataError(f"{label}: file not found; check the path or run 'mnistlab data fetch'") from None
    except IsADirectoryError:
        raise DataError(f"{label}: is a folder, not a file; {_FIX}") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot read ({exc.strerror}); check its permissions") from None
    return decompress(data, label, max_bytes=max_bytes)


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
    _payload_problem(int(np.prod(dims, dtype=np.int64)), len(data) - header_len, ndim, name)
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
