"""Time limits on every connection: uvicorn's h11 protocol with a header, a body and an idle time-out.

uvicorn closes a kept-alive connection that stays silent after a response, but it has no time-out
for *receiving* a request: its keep-alive timer restarts on every byte, and a new connection that
never sends one has no timer at all. So a client sending its headers a byte a second, its body at
2 B/s, or nothing, held a connection for ever, and a slow body kept SIGTERM from finishing (an ASGI
middleware cannot help: the app is called only once the headers are in). :class:`TimedH11Protocol`
adds the missing limits:

- idle: a connection that sends nothing for uvicorn's ``timeout_keep_alive`` is closed, a new one too;
- headers: the request line and headers must arrive within ``header_s`` of their first byte;
- body: the whole body within ``body_s`` of the end of the headers;
- shutdown: a request whose body is still arriving when the server is told to stop is refused at once
  (503); the requests already received are answered within uvicorn's ``timeout_graceful_shutdown``.

A request past its limit is answered ``408 {"error": "..."}`` and its connection closed; when the app
was already reading that body it hears that the client went away.

    >>> import uvicorn                                                                     # doctest: +SKIP
    >>> uvicorn.run(app, http=timed_protocol(header_s=10, body_s=60), ws="none", timeout_keep_alive=30,
    ...             timeout_graceful_shutdown=10)                                          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """Seconds for a request's headers (from their first byte) and its body (from the end of the headers)."""

    header_s: float
    body_s: float


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with :class:`ConnectionLimits` (see the module's docstring)."""

    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.arriving: str | None = None  # "headers" or "body" while a request is arriving, else None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its idle timer only after a response: a connection that never speaks had none.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have started arriving

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.arriving == "body" and self.cycle is not None and not self.cycle.response_started:
            self._refuse(503, "the server is shutting down; send the request again", (("retry-after", "1"),))
            return
        super().shutdown()

    def _follow(self) -> None:
        """Start the limit of the part of the request now arriving; its clock runs from that part's start."""
        state, (buffered, _) = self.conn.their_state, self.conn.trailing_data
        arriving = "headers" if state is h11.IDLE and buffered else "body" if state is h11.SEND_BODY else None
        if arriving == self.arriving or self.transport.is_closing():
            return
        self._disarm()
        self.arriving = arriving
        if arriving is not None:
            limit = self.limits.header_s if arriving == "headers" else self.limits.body_s
            self.deadline = self.loop.call_later(limit, self._expired, arriving, limit)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.arriving = None

    def _expired(self, part: str, limit: float) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        self.logger.info("%s:%d - request %s not received within %g s; connection closed", *(self.client or ("?", 0)),
                         part, limit)
        if part == "body" and self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # the app answered (or is answering) without the body: no room for a status
            return
        self._refuse(408, f"request {part} not received within {limit:g} s")

    def _refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer ``status`` in place of the app (whose request, if any, then hears that its client left) and close."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's own answer is dropped; its receive() says http.disconnect
            self.cycle.message_event.set()
        body = json.dumps({"error": message}).encode()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
                f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers)]
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.transport.close()


def timed_protocol(header_s: float, body_s: float) -> functools.partial:
    """What uvicorn's ``http=`` takes: a partial of a module-level class pickles to its worker processes."""
    return functools.partial(TimedH11Protocol, limits=ConnectionLimits(header_s, body_s))
