"""Peak memory of `mnistlab serve` under concurrent worst-case pictures: the server's VmHWM.

    python benchmarks/serve_memory.py [RUN_DIR] [--clients 16] [--modes L,RGBA] [--serve-args "..."] [--json]

Method. For each picture mode a fresh ``mnistlab serve RUN_DIR`` (one worker, 127.0.0.1, the
defaults of the command but a long ``--timeout``) is started, so each peak is its own. Once ``/healthz`` answers, its
resident memory (VmRSS in ``/proc/<pid>/status``) is the baseline; then ``--clients`` threads each
send one worst-case picture at the same moment (``POST /v1/predict``, ``Content-Type: image/png``,
each on its own connection) and wait for the answer; once the server has used no CPU for a second,
its peak resident memory since it started (VmHWM) is read. The worst case is a 4096 × 4096 PNG (the largest the service
accepts) whose every pixel is ink: a black square on white paper, 22 KB in mode L; RGBA adds an
alpha channel (the largest decoded form). ``--serve-args`` adds options to ``mnistlab serve``
(``--decode-wait 60``: no picture is turned away). Without RUN_DIR a `simple` model is trained for one
epoch on 1,000 images into a temporary folder (the model does not matter here: a picture is
preprocessed before the model sees it). Linux only (``/proc``). State the CPU with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

SIDE = 4096


def worst_case_png(mode: str) -> bytes:
    """A ``SIDE``² PNG of ``mode`` whose every pixel but a thin margin of paper is ink."""
    from PIL import Image

    page = Image.new("L", (SIDE, SIDE), 255)
    page.paste(0, (8, 8, SIDE - 8, SIDE - 8))
    buf = io.BytesIO()
    page.convert(mode).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int, field: str) -> float:
    """``field`` (VmRSS, VmHWM) of process ``pid``, in MB (10⁶ bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def wait_idle(pid: int, quiet_s: float = 1.0, limit_s: float = 120.0) -> None:
    """Until process ``pid`` has used no CPU for ``quiet_s`` (at most ``limit_s``)."""
    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    deadline, last, since = time.monotonic() + limit_s, cpu_ticks(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        if (now := cpu_ticks()) != last:
            last, since = now, time.monotonic()


def start_server(run_dir: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # A long --timeout: every picture is preprocessed to the end (a 504 would answer while its
    # thread still runs), so the peak covers all the work.
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", run_dir, "--port", str(port), "--timeout", "300",
                             *extra],
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the server failed to start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not answer /healthz in 120 s")


def send(url: str, body: bytes, start: threading.Barrier, statuses: list[int]) -> None:
    request = urllib.request.Request(url + "/v1/predict", data=body, headers={"Content-Type": "image/png"})
    start.wait()
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            statuses.append(answer.status)
    except urllib.error.HTTPError as exc:
        statuses.append(exc.code)


def measure(run_dir: str, mode: str, clients: int, extra: list[str]) -> dict:
    body = worst_case_png(mode)
    proc, url = start_server(run_dir, extra)
    try:
        baseline = memory_mb(proc.pid, "VmRSS")
        statuses: list[int] = []
        barrier = threading.Barrier(clients)
        threads = [threading.Thread(target=send, args=(url, body, barrier, statuses)) for _ in range(clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - began
        wait_idle(proc.pid)  # work may go on after an answer (a client's time-out, a freed array)
        peak = memory_mb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"mode": mode, "png_bytes": len(body), "clients": clients, "baseline_rss_mb": round(baseline, 1),
            "peak_rss_mb": round(peak, 1), "rise_mb": round(peak - baseline, 1),
            "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))}, "seconds": round(seconds, 2)}


def tiny_run(folder: str) -> str:
    out = str(Path(folder) / "simple")
    subprocess.run([sys.executable, "-m", "mnistlab", "train", "--arch", "simple", "--epochs", "1",
                    "--train-subset", "1000", "--out", out, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="the run to serve (default: a tiny one trained first)")
    parser.add_argument("--clients", type=int, default=16, help="pictures sent at once (default %(default)s)")
    parser.add_argument("--modes", default="L,RGBA", help="PIL modes of the picture, one server each (default %(default)s)")
    parser.add_argument("--serve-args", default="", help="more options for mnistlab serve, e.g. '--decode-wait 60'")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run_dir or tiny_run(tmp)
        rows = [measure(run_dir, mode, args.clients, shlex.split(args.serve_args)) for mode in args.modes.split(",")]
    conditions = {"cpu": cpu_name(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                  "command": shlex.join(["python", *sys.argv])}
    if args.json:
        print(json.dumps({"conditions": conditions, "rows": rows}, indent=2))
        return
    print(f"serve memory: {conditions}")
    print(f"{'mode':<5} {'PNG bytes':>9} {'clients':>7} {'baseline MB':>11} {'peak MB':>8} {'rise MB':>8} {'seconds':>7}  statuses")
    for r in rows:
        print(f"{r['mode']:<5} {r['png_bytes']:>9,} {r['clients']:>7} {r['baseline_rss_mb']:>11.0f} {r['peak_rss_mb']:>8.0f} "
              f"{r['rise_mb']:>8.0f} {r['seconds']:>7.1f}  {r['statuses']}")


if __name__ == "__main__":
    main()
