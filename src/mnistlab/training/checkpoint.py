"""The resume checkpoint (``checkpoint.pt``): written atomically, read without unpickling code.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
    >>> save_checkpoint(path, {"epoch": 1, "step": {"w": torch.zeros(2)}})
    >>> load_checkpoint(path)["epoch"]
    1

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: a run directory from someone else cannot run code through
``--resume``. Anything else in the file (a pickled object, a damaged file) is refused with a
one-line :class:`~mnistlab.errors.UserError`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from mnistlab.errors import UserError
from mnistlab.fileio import write_bytes

# Larger than any checkpoint of the registered models with Adam state (~6 MB for `deeper`), far
# smaller than what would hurt to read.
MAX_CHECKPOINT_BYTES = 2 * 1024**3


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a kill mid-save leaves the previous checkpoint intact.

    Serialised in memory first (a few MB), then written by Python: a full disk or a file-size limit is
    an OSError with its reason, where torch's own file writer reports only "unexpected pos ...".
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getbuffer())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, tensors on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path.parent}: nothing to resume (no {path.name}); train it again with --force")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise UserError(f"{path}: {size:,} bytes is too large for a checkpoint; train the run again with --force")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for foreign objects; several types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a safe mnistlab checkpoint ({first[:120]}); train the run again with --force") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise UserError(f"{path}: not an mnistlab checkpoint; train the run again with --force")
    return state
