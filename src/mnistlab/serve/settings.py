"""What ``mnistlab serve`` was told: the run, the backend, the limits, the token.

    >>> s = ServeSettings("runs/x", host="0.0.0.0", token=None)
    >>> check_bind(s)
    Traceback (most recent call last):
    ...
    mnistlab.errors.UserError: refusing to listen on 0.0.0.0 without a token: set MNISTLAB_API_TOKEN (or pass --insecure to allow anyone on the network)

Settings travel to uvicorn's worker processes as JSON in an environment variable
(``MNISTLAB_SERVE_SETTINGS``): each worker then loads the model once, at start.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import os
import socket
from dataclasses import dataclass, field

from mnistlab.errors import UserError

TOKEN_ENV = "MNISTLAB_API_TOKEN"
SETTINGS_ENV = "MNISTLAB_SERVE_SETTINGS"
BACKENDS = ("torch", "onnx")
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a 256-image batch of compact JSON uint8 pixels fits
DEFAULT_MAX_INFER_BODY = 16 * 1024 * 1024  # /v2 infer: 256 FP32 images as JSON text are ~5 MB
DEFAULT_MAX_BATCH = 256
# Pictures decoded at once per worker: a 4096 × 4096 one holds up to ~130 MB while it is decoded
# (RGBA, in PIL), and more decodes than cores are not faster. Others wait, then get a 503.
DEFAULT_MAX_DECODES = 4
DEFAULT_DECODE_WAIT_S = 2.0
# Connection time limits (seconds; serve/connections.py). A request's headers are a few hundred
# bytes: 10 s is generous on any link. The body, up to 16 MiB on /v2 infer, must arrive whole within
# 60 s (about 270 KiB/s for the largest). 30 s of silence closes a connection, new or kept alive.
# On SIGTERM, requests already received get 10 s to be answered.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 60.0
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0


@dataclass
class ServeSettings:
    """Options of one service; every field has the CLI flag of the same name."""

    run_dir: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    backend: str = "torch"
    token: str | None = None  # MNISTLAB_API_TOKEN; None: no authentication
    insecure: bool = False  # allow a non-loopback bind without a token
    max_body: int = DEFAULT_MAX_BODY
    max_infer_body: int = DEFAULT_MAX_INFER_BODY
    max_batch: int = DEFAULT_MAX_BATCH
    threads: int | None = None  # intra-op threads per worker (torch, ONNX Runtime); None: the library default
    timeout_s: float = 10.0  # a batch computing longer than this answers 504
    max_decodes: int = DEFAULT_MAX_DECODES
    decode_wait_s: float = DEFAULT_DECODE_WAIT_S  # a picture waiting longer for a decode turn answers 503
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S  # request line and headers, from their first byte
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S  # the whole body, from the end of the headers
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S  # a connection that sends nothing (new or kept alive)
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S  # SIGTERM: in-flight requests, then exit

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        for name in ("port", "workers", "max_body", "max_infer_body", "max_batch", "max_decodes"):
            if getattr(self, name) < (0 if name == "port" else 1):
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise UserError("--threads must be at least 1")
        for name in ("timeout_s", "decode_wait_s", "header_timeout_s", "body_timeout_s", "idle_timeout_s",
                     "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.removesuffix('_s').replace('_', '-')} must be positive")

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> "ServeSettings":
        return cls(**json.loads(os.environ[SETTINGS_ENV]))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(settings: ServeSettings) -> None:
    """Refuse a non-loopback address without a token (before any model is loaded)."""
    if not is_loopback(settings.host) and not settings.token and not settings.insecure:
        raise UserError(f"refusing to listen on {settings.host} without a token: set {TOKEN_ENV} "
                        "(or pass --insecure to allow anyone on the network)")


def check_port(settings: ServeSettings) -> None:
    """Refuse an address and port that cannot be listened on (in use, not allowed), before the
    model loads and the banner is printed.

    Binds a socket as uvicorn will (IPv6 for an address with a colon, ``SO_REUSEADDR``, so a
    port left in TIME_WAIT is free) and closes it: a port taken in the moment between is still
    reported by uvicorn itself.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {settings.port} on {settings.host} is in use (another server?); "
                                "stop that one or choose another port with --port") from None
            reason = exc.strerror or str(exc)
            raise UserError(f"cannot listen on {settings.host} port {settings.port} ({reason}); "
                            "choose another --host or --port") from None
