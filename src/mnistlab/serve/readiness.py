"""A worker that cannot load its run, and a run that changes under a running worker.

- Each of ``--workers N`` loads the run when it starts, and again when uvicorn replaces a dead one.
  When it cannot (the run's files deleted or damaged since the service started) it used to exit
  with a 40-line traceback and be restarted at once, for ever, while ``/healthz`` said ok from the
  other workers. Now it stays up and says so: every path but the liveness probe (``/v2/health/live``)
  answers 503 with the reason, ``/healthz`` and ``/v2/health/ready`` included, and it tries again
  after 1, 2, 4 ... s (at most a minute), one log line per failed try.
- A loaded model lives in memory, so a run retrained, resumed or deleted under a running service
  does not change its answers; each worker looks at the files it loaded every ``WATCH_EVERY_S``
  seconds and logs one line when they change (a restart serves the new files).

    >>> app.add_middleware(NotReady, state=app.state)                                   # doctest: +SKIP
    >>> FastAPI(lifespan=keeper(settings, install))                                     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Callable

from mnistlab.serve.model import ModelHolder
from mnistlab.serve.settings import ServeSettings

WATCH_EVERY_S = 2.0
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
LIVE = "/v2/health/live"  # the process is up: the one path that answers while the model is not loaded

log = logging.getLogger("mnistlab.serve")


def load_failed(exc: Exception, retry_s: float) -> str:
    """Log one line for a failed load (no traceback: the reason is the message) and return the reason."""
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    log.warning("worker %d cannot load the run: %s; it answers 503 and tries again in %g s", os.getpid(), reason, retry_s)
    return reason


class NotReady:
    """ASGI middleware: while ``state.holder`` is None, 503 ``{"status": "not ready", "error": ...}``
    on every path but :data:`LIVE`, with the reason kept in ``state.not_ready``."""

    def __init__(self, app, *, state):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.state.holder is not None or scope["path"] == LIVE:
            return await self.app(scope, receive, send)
        body = json.dumps({"status": "not ready", "error": f"the model is not loaded: {self.state.not_ready}"}).encode()
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", b"5")]})
        await send({"type": "http.response.body", "body": body})


async def keep_model(state, settings: ServeSettings, install: Callable[[ModelHolder], None]) -> None:
    """Load the run until it loads (backing off), ``install`` it, then watch the files it came from."""
    retry_s = RETRY_FIRST_S
    while state.holder is None:
        await asyncio.sleep(retry_s)
        retry_s = min(2 * retry_s, RETRY_MAX_S)
        try:
            # In a thread: the probes keep answering while the model loads.
            holder = await asyncio.to_thread(ModelHolder.load, settings.run_dir, settings.backend, settings.threads)
        except Exception as exc:  # noqa: BLE001  (whatever stops the load, the worker reports it and retries)
            state.not_ready = load_failed(exc, retry_s)
            continue
        install(holder)
        log.warning("worker %d loaded %s; ready", os.getpid(), settings.run_dir)
    reported: list[str] = []
    while True:
        await asyncio.sleep(WATCH_EVERY_S)
        changed = state.holder.changed_sources()
        if changed and changed != reported:
            log.warning("the served run's files changed since this worker loaded them: %s; it keeps serving "
                        "the model it loaded (restart the service to serve the new files)", ", ".join(changed))
        reported = changed


def keeper(settings: ServeSettings, install: Callable[[ModelHolder], None]):
    """A FastAPI lifespan running :func:`keep_model` for as long as the app runs."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(keep_model(app.state, settings, install))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return lifespan
