"""The service when clients are slow or silent and when it is told to stop: every connection has a
time limit, SIGTERM ends within its deadline."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from serve_helpers import free_port

pytest_plugins = ["serve_fixtures"]

# Small limits so a test waits seconds; MARGIN_S absorbs a loaded 2-core machine.
HEADER_S, BODY_S, IDLE_S, SHUTDOWN_S = 2, 3, 2, 4
MARGIN_S = 12
LIMITS = ["--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S), "--idle-timeout", str(IDLE_S),
          "--shutdown-timeout", str(SHUTDOWN_S)]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@contextlib.contextmanager
def _server(run_dir: Path, *args: str):
    """``mnistlab serve RUN --port P ARGS`` in a subprocess, once /healthz answers; yields (process, port)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_API_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run_dir), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError):
                if _status(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}")
            time.sleep(0.3)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _trickle(sock: socket.socket, data: bytes, every_s: float, limit_s: float) -> tuple[bool, bytes, float]:
    """Send ``data`` one byte per ``every_s`` until the server closes the connection or ``limit_s``
    passes; (closed, what the server sent, seconds)."""
    start, answer = time.monotonic(), b""
    for i in range(int(limit_s / every_s)):
        with contextlib.suppress(OSError):  # the server may have closed already: its answer is still readable
            sock.send(data[i % len(data): i % len(data) + 1])
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return True, answer, time.monotonic() - start
            answer += chunk
    return False, answer, time.monotonic() - start


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


SLOW_BODY_HEAD = (b"POST /v1/predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 4000\r\n\r\n")


@pytest.fixture(scope="module")
def limited_server(trained_run):
    with _server(trained_run, *LIMITS) as (_, port):
        yield port


@pytest.mark.slow
def test_a_client_sending_headers_a_byte_at_a_time_is_refused_with_408(limited_server):
    with _connect(limited_server) as sock:
        closed, answer, waited = _trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 500,
                                          every_s=0.2, limit_s=HEADER_S + MARGIN_S)
    assert closed and waited < HEADER_S + MARGIN_S
    assert answer.startswith(b"HTTP/1.1 408 ")


@pytest.mark.slow
def test_a_body_at_two_bytes_a_second_is_refused_with_408(limited_server):
    with _connect(limited_server) as sock:
        sock.sendall(SLOW_BODY_HEAD)
        closed, answer, waited = _trickle(sock, b'{"pixels": [' + b"0, " * 1500, every_s=0.5,
                                          limit_s=BODY_S + MARGIN_S)
    assert closed and waited < BODY_S + MARGIN_S
    assert answer.startswith(b"HTTP/1.1 408 ") and b"body" in answer


@pytest.mark.slow
def test_a_silent_connection_is_closed_after_the_idle_time_out(limited_server):
    with _connect(limited_server) as sock:
        sock.settimeout(IDLE_S + MARGIN_S)
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server (a socket.timeout here: still open)
    assert time.monotonic() - start < IDLE_S + MARGIN_S
    assert _status(f"http://127.0.0.1:{limited_server}/healthz") == 200  # the server itself is fine


@pytest.mark.slow
def test_a_request_slower_than_its_parts_but_within_the_limits_is_answered(limited_server):
    body = b'{"pixels": [' + b", ".join([b"0"] * 784) + b"]}"
    head = (b"POST /v1/predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    # Headers over 1.2 s, then the body over 1.6 s: each part well within its limit, the whole request
    # (about 3.4 s) longer than either limit.
    parts = [(head[:20], 0.6), (head[20:40], 0.6), (head[40:], 0.6), (body[:100], 0.8), (body[100:200], 0.8), (body[200:], 0)]
    with _connect(limited_server) as sock:
        for part, pause in parts:
            sock.sendall(part)
            time.sleep(pause)
        sock.settimeout(30)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
def test_sigterm_with_a_slow_body_in_flight_exits_within_the_deadline(trained_run):
    # A body time-out far beyond the deadline: only the shutdown can end this request.
    with _server(trained_run, "--shutdown-timeout", str(SHUTDOWN_S), "--body-timeout", "600") as (proc, port):
        with _connect(port) as sock:
            sock.sendall(SLOW_BODY_HEAD + b'{"pixels": [0, 0')
            time.sleep(0.5)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=SHUTDOWN_S + MARGIN_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {SHUTDOWN_S + MARGIN_S} s after SIGTERM")
            assert time.monotonic() - start < SHUTDOWN_S + MARGIN_S
            sock.settimeout(5)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 ")  # refused cleanly, not dropped
