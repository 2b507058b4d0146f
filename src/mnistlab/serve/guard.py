"""One ASGI layer in front of every route: the token, the body limit and the metrics.

Written as plain ASGI (not Starlette's ``BaseHTTPMiddleware``) because it runs on every request
and that wrapper costs a task and a queue per request.

- Token: when set, every path except the probes (``PUBLIC``) and the drawing page's static files
  (which hold no data; the page asks for the token and sends it with each API call) needs
  ``Authorization: Bearer <token>``, compared in constant time (``hmac.compare_digest``); 401 otherwise.
- Body limit: a ``Content-Length`` over the route's limit is answered 413 before a byte of the body
  is read; a chunked body is counted as it arrives and refused with 413 once it passes the limit.
- A client that hangs up before its body has arrived gets no answer (there is no one to send it
  to): it is counted with status 499 (nginx's "client closed request") and logged in one line,
  not as a 500 with a traceback.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any, Callable

from starlette.requests import ClientDisconnect

from mnistlab.serve.metrics import Metrics
from mnistlab.serve.parsing import header_int

log = logging.getLogger("mnistlab.serve")  # unconfigured, a warning still reaches stderr, as one line

PUBLIC = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
PAGE = frozenset({"/", "/favicon.ico"})
STATIC_PREFIX = "/static/"
CLIENT_CLOSED = 499


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes its limit (the app answers 413)."""

    def __init__(self, limit: int):
        super().__init__(f"body: over the {limit:,}-byte limit for this route")
        self.limit = limit


def _needs_token(path: str) -> bool:
    return not (path in PUBLIC or path in PAGE or path.startswith(STATIC_PREFIX))


async def _send_json(send, status: int, payload: dict[str, Any], headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: ``Guard(app, token=..., body_limit=path → bytes, metrics=Metrics())``."""

    def __init__(self, app, *, token: str | None, body_limit: Callable[[str], int], metrics: Metrics):
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.body_limit = body_limit
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status_box = [500]

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_and_record)
        except ClientDisconnect:
            status_box[0] = CLIENT_CLOSED
            log.warning("%s %r: the client closed the connection before its request had arrived",
                        scope["method"][:16], scope["path"][:100])
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status_box[0], time.perf_counter() - start)

    async def _guarded(self, scope, receive, send):
        path = scope["path"]
        headers = dict(scope["headers"])  # later duplicates win; only single-valued headers are read
        if self.expected is not None and scope["method"] != "OPTIONS" and _needs_token(path):  # CORS preflight
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await _send_json(send, 401, {"error": "missing or wrong token; send Authorization: Bearer <MNISTLAB_API_TOKEN>"},
                                        [(b"www-authenticate", b"Bearer")])
        limit = self.body_limit(path)
        length = headers.get(b"content-length")
        if length is not None:
            size = header_int(length)
            if size is None:
                return await _send_json(send, 400, {"error": "content-length: not a number of bytes"})
            if size > limit:
                return await _send_json(send, 413, {"error": f"body: {size:,} bytes is over the {limit:,}-byte limit for this route"},
                                        [(b"connection", b"close")])
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)
