"""Slow and silent clients against `mnistlab serve` with its default time limits: when is each dropped?

    python benchmarks/serve_slow_clients.py RUN_DIR [--silent 100] [--slow-headers 50] [--slow-bodies 20]
                                                    [--limit 120] [SERVE OPTIONS...]

Method. Starts ``mnistlab serve RUN_DIR`` (its defaults, or the serve options given after the
counts), waits for ``/healthz``, then opens, all on 127.0.0.1: ``--silent`` connections that send
nothing; ``--slow-headers`` that send ``GET /healthz`` and then one header byte a second, never
ending; ``--slow-bodies`` that send complete headers of a 4,000-byte ``POST /v1/predict`` and then
2 body bytes a second. One thread, ``selectors``; each connection's time from its first byte (from
its opening for the silent ones) to the server's close is recorded, with the status the server
answered. After ``--limit`` seconds whatever is still open counts as never dropped. Then a last
slow body is started and the server sent SIGTERM: the seconds until it exits, and its answer.
Prints one line per kind: count dropped, time to drop (min/median/max) and the statuses.
"""

from __future__ import annotations

import argparse
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

BODY_HEAD = (b"POST /v1/predict HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
             b"Content-Length: 4000\r\n\r\n")
KINDS = {  # kind: (sent at once, trickled, bytes per second)
    "silent": (b"", b"", 0),
    "slow headers": (b"", b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 4000, 1),
    "slow bodies": (BODY_HEAD, b'{"pixels": [' + b"0, " * 1300, 2),
}


def start(run_dir: str, options: list[str]) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", run_dir, "--port", str(port), *options],
                            stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("the server failed to start")
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not answer /healthz")


def run_clients(port: int, counts: dict[str, int], limit_s: float) -> dict[str, list[tuple[float, str] | None]]:
    sel = selectors.DefaultSelector()
    conns = []  # [socket, kind, started, bytes trickled]
    for kind, n in counts.items():
        head = KINDS[kind][0]
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(head)
            sock.setblocking(False)
            conns.append([sock, kind, time.monotonic(), 0])
            sel.register(sock, selectors.EVENT_READ, len(conns) - 1)
    results: dict[str, list] = {kind: [] for kind in counts}
    answers = [b""] * len(conns)
    open_ = set(range(len(conns)))
    begin = time.monotonic()
    while open_ and time.monotonic() - begin < limit_s:
        for key, _ in sel.select(timeout=0.1):
            i = key.data
            try:
                chunk = conns[i][0].recv(4096)
            except (ConnectionResetError, BlockingIOError):
                chunk = b""
            answers[i] += chunk
            if not chunk:
                sock, kind, started, _ = conns[i]
                sel.unregister(sock)
                sock.close()
                open_.discard(i)
                status = answers[i].split(b" ", 2)[1].decode() if answers[i].startswith(b"HTTP/") else "closed"
                results[kind].append((time.monotonic() - started, status))
        now = time.monotonic()
        for i in list(open_):
            sock, kind, started, sent = conns[i]
            trickle, rate = KINDS[kind][1], KINDS[kind][2]
            due = int((now - started) * rate) + (1 if rate else 0)
            if sent < due and sent < len(trickle):
                try:
                    sock.send(trickle[sent:due])
                except OSError:
                    continue
                conns[i][3] = due
    for i in open_:
        results[conns[i][1]].append(None)
        conns[i][0].close()
    return results


def sigterm_with_slow_body(proc: subprocess.Popen, port: int) -> tuple[float, str]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(BODY_HEAD + b'{"pixels": [0, 0')
    time.sleep(0.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return float("inf"), "still running after 120 s"
    sock.settimeout(5)
    answer = sock.recv(4096)
    return time.monotonic() - start, answer.split(b"\r\n")[0].decode() or "closed without an answer"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--silent", type=int, default=100)
    parser.add_argument("--slow-headers", type=int, default=50)
    parser.add_argument("--slow-bodies", type=int, default=20)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds before an open connection counts as never dropped")
    args, serve_options = parser.parse_known_args()
    proc, port = start(args.run_dir, serve_options)
    try:
        counts = {"silent": args.silent, "slow headers": args.slow_headers, "slow bodies": args.slow_bodies}
        results = run_clients(port, counts, args.limit)
        exit_s, answer = sigterm_with_slow_body(proc, port)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"# {cpu_model()}, {os.cpu_count()} cores, serve options: {' '.join(serve_options) or 'defaults'}")
    for kind, rows in results.items():
        dropped = sorted(r[0] for r in rows if r is not None)
        statuses = sorted({r[1] for r in rows if r is not None})
        spread = (f"after {dropped[0]:.1f} / {statistics.median(dropped):.1f} / {dropped[-1]:.1f} s (min/median/max), "
                  f"answered {', '.join(statuses)}" if dropped else "")
        print(f"{kind:13s} {len(dropped)}/{len(rows)} dropped {spread}")
    print(f"SIGTERM with a slow body in flight: exited after {exit_s:.1f} s; the client got: {answer}")


if __name__ == "__main__":
    main()
