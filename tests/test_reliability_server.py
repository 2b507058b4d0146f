"""The service when clients are slow or silent, when it is told to stop, and when the run it serves
changes under it: every connection has a time limit, SIGTERM ends within its deadline, the model
stays in memory, a worker that cannot load the run says so on /healthz and retries with back-off,
and a stale ONNX export is never served."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from serve_helpers import server_process

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
    with server_process(trained_run, *LIMITS) as (_, port):
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
    with server_process(trained_run, "--shutdown-timeout", str(SHUTDOWN_S), "--body-timeout", "600") as (proc, port):
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


# --- a changed run under a running server --------------------------------------------------------

def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / run.name
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("export"))
    return out


def _other_weights(run_dir: Path) -> None:
    """Replace the run's weights with other valid ones (as a resumed run would)."""
    import torch

    from mnistlab import runs
    from mnistlab.frameworks.pytorch import load_model

    model, _ = load_model(run_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    runs.save_weights(run_dir, model)


def test_the_model_is_held_in_memory_not_read_from_the_file(trained_run, test_digits, tmp_path):
    from mnistlab.serve.model import ModelHolder

    run = _copy(trained_run, tmp_path)
    holder = ModelHolder.load(run)
    x, _ = test_digits
    before = holder.probabilities(x)
    weights = run / "model.safetensors"
    with open(weights, "r+b") as fh:  # in place: a memory-mapped file would now read zeros (or SIGBUS)
        fh.write(b"\0" * weights.stat().st_size)
    weights.unlink()
    np.testing.assert_array_equal(holder.probabilities(x), before)


def test_a_change_to_the_served_run_is_logged_once(trained_run, tmp_path, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    from mnistlab.serve import readiness
    from mnistlab.serve.app import create_app
    from mnistlab.serve.settings import ServeSettings

    monkeypatch.setattr(readiness, "WATCH_EVERY_S", 0.05)
    run = _copy(trained_run, tmp_path)
    with TestClient(create_app(ServeSettings(str(run)))) as client, caplog.at_level(logging.WARNING):
        _other_weights(run)
        deadline = time.monotonic() + 30
        while not any("changed" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # ten more looks at the files: still one line
        assert client.get("/healthz").status_code == 200  # still serving the weights it loaded
    lines = [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]
    assert len(lines) == 1 and "model.safetensors" in lines[0], lines


def test_a_worker_that_cannot_load_the_run_is_not_ready_and_retries(trained_run, tmp_path, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    from mnistlab.serve import readiness
    from mnistlab.serve.app import app_from_env
    from mnistlab.serve.settings import SETTINGS_ENV, ServeSettings

    monkeypatch.setattr(readiness, "RETRY_FIRST_S", 0.2)
    run = _copy(trained_run, tmp_path)
    weights = run / "model.safetensors"
    kept = weights.read_bytes()
    weights.unlink()
    monkeypatch.setenv(SETTINGS_ENV, ServeSettings(str(run)).to_env())
    with caplog.at_level(logging.WARNING), TestClient(app_from_env()) as client:  # a worker (re)started now
        r = client.get("/healthz")
        assert r.status_code == 503 and "no weights" in r.json()["error"]
        assert client.get("/v2/health/ready").status_code == 503
        assert client.post("/v1/predict", json={"pixels": [0] * 784}).status_code == 503
        assert client.get("/v2/health/live").status_code == 200
        deadline = time.monotonic() + 60
        while len([r for r in caplog.records if "cannot load" in r.getMessage()]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        weights.write_bytes(kept)
        deadline = time.monotonic() + 60
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/predict", json={"pixels": [0] * 784}).status_code == 200
    failures = [r.getMessage() for r in caplog.records if "cannot load" in r.getMessage()]
    assert 3 <= len(failures) <= 6 and all("\n" not in m for m in failures)  # one line each, backing off


def _workers(pid: int) -> set[int]:
    """The uvicorn worker processes of a server (children started by multiprocessing's spawn)."""
    found = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):  # a child that just ended
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="reads Linux's /proc")
def test_a_worker_killed_after_its_run_was_deleted_does_not_crash_loop(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    with server_process(run, "--workers", "2") as (proc, _):
        deadline = time.monotonic() + 60
        while len(_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        (run / "model.safetensors").unlink()
        victim = min(_workers(proc.pid))
        os.kill(victim, signal.SIGKILL)
        while len(_workers(proc.pid) - {victim}) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        replacement = _workers(proc.pid) - {victim}
        time.sleep(10)  # before the fix: a new worker every 2-3 s, each with a 40-line traceback
        assert _workers(proc.pid) == replacement  # the replacement stayed up, not ready, retrying
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    failures = [line for line in err.splitlines() if "cannot load" in line]
    # Each worker that had not loaded the run when it went backs off on its own (1, 2, 4, 8, 16 s: at most six
    # lines in this time); no other process ever logs, since no worker is started again.
    per_worker = Counter(int(re.search(r"worker (\d+) cannot load", line).group(1)) for line in failures)
    assert per_worker and set(per_worker) <= replacement | {victim}, err[-3000:]
    assert max(per_worker.values()) <= 6, err[-3000:]
    assert "Traceback" not in err and len(err.splitlines()) < 40, err[-3000:]


# --- stale ONNX exports ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("record", ["kept", "lost"])
def test_onnx_backend_never_serves_an_export_of_other_weights(trained_run, test_digits, tmp_path, record):
    pytest.importorskip("onnxruntime")
    from mnistlab.export.onnx_export import export_onnx
    from mnistlab.frameworks.inference import predictor
    from mnistlab.maths.metrics import softmax
    from mnistlab.serve.model import ModelHolder

    run = _copy(trained_run, tmp_path)
    export_onnx(run)
    stale = (run / "export" / "model.onnx").read_bytes()
    _other_weights(run)  # the run resumed after the export
    if record == "lost":  # an export killed before its record was written
        (run / "export" / "onnx.json").unlink()
    x, _ = test_digits
    holder = ModelHolder.load(run, "onnx")
    expected = softmax(np.asarray(predictor(run)(x), np.float64))
    np.testing.assert_allclose(holder.probabilities(x), expected, atol=1e-4)
    served = run / "export" / "model.onnx"
    assert served.read_bytes() != stale and (run / "export" / "onnx.json").is_file()
    with open(served, "r+b") as fh:  # the session holds the model's bytes, not the file
        fh.write(b"\0" * served.stat().st_size)
    np.testing.assert_allclose(holder.probabilities(x), expected, atol=1e-4)
