"""Running inference for a request: small requests are micro-batched on the event loop; large
batches, image decoding and Grad-CAM run in a worker thread under a time limit.

A single image through these small networks takes well under a millisecond: handing it to a
thread pool and back would cost more than the work. So requests of up to ``INLINE_MAX`` images
join a :class:`MicroBatcher`: every request that arrives while the loop is busy is classified in
the same call (one forward pass for 8 waiting clients instead of 8), then each gets its own rows.
A computation in a thread that passes ``timeout_s`` answers 504. Pictures are decoded through a
:class:`DecodeGate`: a few at once, since a large one holds tens of MB while it is decoded; one
that waits too long for its turn answers 503 with ``Retry-After``. These are the only 5xx a client
can see, and only when the server is genuinely slow or busy.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

from mnistlab.serve.parsing import ApiError

INLINE_MAX = 8
MICRO_BATCH_MAX = 64
RETRY_AFTER_S = 1  # a busy decode gate's advice: a worst-case picture takes 0.3-1.3 s on 2 busy cores


async def _within(work: Awaitable, timeout_s: float) -> Any:
    try:
        return await asyncio.wait_for(work, timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(504, f"the computation ran past the server's {timeout_s:g} s limit; "
                            "send a smaller batch or try again") from None


async def in_thread(func: Callable[..., Any], *args, timeout_s: float) -> Any:
    """``func(*args)`` in a worker thread; 504 when it runs past ``timeout_s``."""
    return await _within(run_in_threadpool(func, *args), timeout_s)


class DecodeGate:
    """At most ``limit`` calls at once of :meth:`run` (picture decodes), each in a worker thread
    under ``timeout_s``; a call that has waited ``wait_s`` for its turn is a 503 with ``Retry-After``.

    A turn is given back when the thread ends, not when the request stops waiting (a 504 answers
    while the thread goes on, holding its memory): the bound is on the memory in use. One
    semaphore per event loop, as in :class:`MicroBatcher`; uvicorn runs one loop per worker, so
    the limit is per worker.
    """

    def __init__(self, limit: int, wait_s: float):
        self.limit, self.wait_s = limit, wait_s
        self.turns: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if loop not in self.turns:  # and forget the loops that have ended (a test client's)
            self.turns = {known: s for known, s in self.turns.items() if not known.is_closed()}
            self.turns[loop] = asyncio.Semaphore(self.limit)
        return self.turns[loop]

    async def run(self, func: Callable[..., Any], *args, timeout_s: float) -> Any:
        turns = self._semaphore()
        try:
            await asyncio.wait_for(turns.acquire(), self.wait_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"busy: {self.limit} pictures are being decoded and this one waited "
                                f"{self.wait_s:g} s for its turn; send it again in {RETRY_AFTER_S} s",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        work = asyncio.ensure_future(run_in_threadpool(func, *args))

        def give_back(done: asyncio.Future) -> None:
            turns.release()
            if not done.cancelled():
                done.exception()  # marks the outcome read: after a 504 nobody awaits it

        work.add_done_callback(give_back)
        return await _within(asyncio.shield(work), timeout_s)


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
