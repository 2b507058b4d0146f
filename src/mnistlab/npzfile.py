"""Read .npz files from someone else: sizes checked from the headers, no pickles, one-line errors.

    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.npz"
    >>> np.savez(p, logits=np.zeros((2, 10), np.float32))
    >>> load_arrays(p, ("logits",), fix="evaluate again")["logits"].shape
    (2, 10)

Each member's shape and dtype come from the zip entry and the .npy header before anything is
decompressed; a member over :data:`MAX_MEMBER_BYTES`, of a non-numeric dtype or missing is a
:class:`~mnistlab.errors.UserError`, and ``allow_pickle=False`` keeps object arrays out.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import UserError

MAX_MEMBER_BYTES = 512 * 2**20  # 10,000 test images × 10 classes is 400 kB; 512 MiB is a hostile file
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _member_header(archive: zipfile.ZipFile, member: str, path: Path, fix: str) -> None:
    """Refuse ``member`` unless its declared size, shape and dtype are a modest numeric array."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise UserError(f"{path}: no {member!r} array; {fix}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise UserError(f"{path}: {member} declares {info.file_size} bytes (limit {MAX_MEMBER_BYTES}); {fix}")
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in _HEADER_READERS:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _fortran, dtype = _HEADER_READERS[version](fh, max_header_size=10_000)
    if dtype.hasobject or dtype.kind not in "fiu":
        raise ValueError(f"{member} has dtype {dtype}, not numbers")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > MAX_MEMBER_BYTES:
        raise UserError(f"{path}: {member} of shape {list(shape)} is over {MAX_MEMBER_BYTES} bytes; {fix}")


def load_arrays(path: str | Path, names: tuple[str, ...], *, fix: str) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the .npz at ``path``, after checking their headers; ``fix`` ends each error."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for name in names:
                _member_header(archive, f"{name}.npy", path, fix)
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{path}: unreadable ({str(exc).splitlines()[0][:120]}); {fix}") from None
