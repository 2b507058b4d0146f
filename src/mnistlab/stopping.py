"""Stopping on SIGINT (Ctrl-C) and SIGTERM at a consistent point, with the command that resumes.

    >>> from mnistlab.stopping import deferred, stop_on_signals
    >>> with stop_on_signals():          # SIGINT and SIGTERM now raise errors.Interrupted
    ...     with deferred():             # ...except in here: they wait for the block's end
    ...         pass

Python stops on SIGINT with a KeyboardInterrupt wherever it is; SIGTERM ends the process at once,
silently. Under :func:`stop_on_signals` both raise :class:`~mnistlab.errors.Interrupted` (a
KeyboardInterrupt carrying the signal), so a long command unwinds the same way for both: the
batch being trained is abandoned, atomic writes leave no half file, and the caller names the
command that resumes. Code that writes several files that must agree (the epoch's weights,
checkpoint and history) runs under :func:`deferred`, where a signal waits for the block's end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from mnistlab.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Signal handlers are per process: so is the state they share with deferred().
_pending: list[int] = []
_deferring = [0]


def _stop(signum: int, _frame: object) -> None:
    if _deferring[0]:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`~mnistlab.errors.Interrupted` in the block; the previous handlers after.

    Only the main thread can set handlers; elsewhere (a notebook's worker thread) the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _stop) for s in SIGNALS}
    try:
        yield
    finally:
        _pending.clear()  # a signal deferred in a block that then failed: the failure speaks
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives in the block is raised when the block ends (the first of them)."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0] and _pending:
        signum = _pending[0]
        _pending.clear()
        raise Interrupted(signum)
