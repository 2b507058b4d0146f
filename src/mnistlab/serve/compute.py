"""Running inference for a request: inline when tiny, else in a worker thread under a time limit.

A single image through these small networks takes well under a millisecond: handing it to a
thread pool and back would cost more than the work and cap the request rate, so up to
``INLINE_MAX`` images run on the event loop. Larger batches, image decoding and Grad-CAM run in
a thread, and a computation that passes ``timeout_s`` answers 504 (the only 5xx a client can
see, and only for a genuine server-side time-out).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from mnistlab.serve.parsing import ApiError

INLINE_MAX = 8


async def in_thread(func: Callable[..., Any], *args, timeout_s: float) -> Any:
    """``func(*args)`` in a worker thread; 504 when it runs past ``timeout_s``."""
    try:
        return await asyncio.wait_for(run_in_threadpool(func, *args), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(504, f"the computation ran past the server's {timeout_s:g} s limit; "
                            "send a smaller batch or try again") from None


async def probabilities(holder, images, timeout_s: float):
    """``holder.probabilities(images)``: inline for ``INLINE_MAX`` images or fewer, else in a thread."""
    if len(images) <= INLINE_MAX:
        return holder.probabilities(images)
    return await in_thread(holder.probabilities, images, timeout_s=timeout_s)
