"""Running inference for a request: small requests are micro-batched on the event loop; large
batches, image decoding and Grad-CAM run in a worker thread under a time limit.

A single image through these small networks takes well under a millisecond: handing it to a
thread pool and back would cost more than the work. So requests of up to ``INLINE_MAX`` images
join a :class:`MicroBatcher`: every request that arrives while the loop is busy is classified in
the same call (one forward pass for 8 waiting clients instead of 8), then each gets its own rows.
A computation in a thread that passes ``timeout_s`` answers 504: the only 5xx a client can see,
and only for a genuine server-side time-out.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

from mnistlab.serve.parsing import ApiError

INLINE_MAX = 8
MICRO_BATCH_MAX = 64


async def in_thread(func: Callable[..., Any], *args, timeout_s: float) -> Any:
    """``func(*args)`` in a worker thread; 504 when it runs past ``timeout_s``."""
    try:
        return await asyncio.wait_for(run_in_threadpool(func, *args), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(504, f"the computation ran past the server's {timeout_s:g} s limit; "
                            "send a smaller batch or try again") from None


class MicroBatcher:
    """Collects the small requests that are ready in one turn of the event loop into one call of ``func``.

    Each event loop has its own queue: a future belongs to the loop that made it, and completing it
    from another loop's thread would leave that loop asleep (uvicorn runs one loop per worker, but a
    test client or an embedding application may run several).
    """

    def __init__(self, func: Callable[[np.ndarray], np.ndarray]):
        self.func = func
        self.pending: dict[asyncio.AbstractEventLoop, list[tuple[np.ndarray, asyncio.Future]]] = {}

    async def __call__(self, images: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        queue = self.pending.setdefault(loop, [])
        queue.append((images, future))
        if len(queue) == 1:
            loop.call_soon(self._flush, loop)  # after the requests already waiting to run
        elif sum(len(x) for x, _ in queue) >= MICRO_BATCH_MAX:
            self._flush(loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self.pending.pop(loop, [])
        if not batch:
            return
        try:
            out = self.func(np.concatenate([x for x, _ in batch]))
        except Exception as exc:  # a failure of the model: every waiting request hears of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for x, future in batch:
            if not future.done():  # a client that went away has a cancelled future
                future.set_result(out[start: start + len(x)])
            start += len(x)


async def probabilities(app_state, images: np.ndarray, timeout_s: float) -> np.ndarray:
    """The holder's probabilities: micro-batched for ``INLINE_MAX`` images or fewer, else in a thread."""
    if len(images) <= INLINE_MAX:
        return await app_state.batcher(images)
    return await in_thread(app_state.holder.probabilities, images, timeout_s=timeout_s)
