"""Which device a run trains on (its precision: :mod:`mnistlab.training.precision`).

    >>> resolve_device("cpu")
    device(type='cpu')

``auto`` takes CUDA when PyTorch sees a GPU. Asking for ``cuda`` on a machine without one is a
one-line :class:`~mnistlab.errors.UserError`, not a traceback from deep inside the model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

import torch

from mnistlab.errors import UserError


def device_type(name: str) -> str:
    """``auto``/``cpu``/``cuda`` → ``"cpu"`` or ``"cuda"``, checking that a GPU is there (touches no GPU)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
    return name


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``/``cpu``/``cuda`` → a ``torch.device``; process ``local_rank`` of a node gets GPU ``local_rank``."""
    if device_type(name) == "cpu":
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"process {local_rank} of this node has no GPU of its own "
                        f"({torch.cuda.device_count()} visible); start at most that many processes per node")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


# glibc's mallopt parameters: M_TRIM_THRESHOLD and M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 1 << 30


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Let glibc reuse freed activation buffers instead of returning them to the OS; True if applied.

    By default glibc serves every allocation above its mmap threshold with a fresh ``mmap`` and
    gives it back on free, so each training step page-faults (and zeroes) its activations and
    gradients again: about 2,600 page faults per batch of 256 for the fast public recipe's model,
    10–15% of a CPU step (docs/speed.md). Raising both thresholds to 1 GiB keeps those pages; the
    peak memory is the same. Process-wide and harmless elsewhere; a no-op off Linux/glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES))
