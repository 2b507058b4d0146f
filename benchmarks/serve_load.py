"""Load test of `mnistlab serve`: requests/s and p50/p99 latency for 1, 8 and 32 concurrent clients.

    python benchmarks/serve_load.py RUN_DIR [--seconds 10] [--clients 1,8,32] [--batches 1,64]
                                            [--backends torch,onnx] [--api v2|v2-binary|v1] [--json]

Method. For each backend the service runs in its own process (uvicorn, one worker, the app of
``mnistlab serve`` plus one extra route, ``POST /bench/constant``, that reads the body and answers
a fixed JSON: the HTTP stack's own ceiling, measured in the same run with the same bodies). This
process is the load generator: asyncio, one keep-alive HTTP/1.1 connection per client, closed
loop (each client sends its next request when the answer to the last has arrived), request
bytes encoded beforehand; one second of warm-up, then ``--seconds`` measured per cell; every
answer is checked to be 200. Bodies: the Open Inference Protocol's JSON (``--api v2``: UINT8
``[N, 784]``), its binary tensor extension (``--api v2-binary``) or ``{"pixels": ...}``
(``--api v1``), with real MNIST test images.
Both processes share the machine's cores: state the hardware with the figures, measure on an idle
machine.
"""

# (no "from __future__ import annotations": FastAPI must see the Request annotation of the route below)

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def serve_with_constant(run_dir: str, backend: str, port: int, threads: int) -> None:
    """Server mode (in the child process): the service's app plus ``POST /bench/constant``."""
    import uvicorn
    from fastapi import Request
    from fastapi.responses import Response

    from mnistlab.serve.app import create_app
    from mnistlab.serve.settings import ServeSettings

    app = create_app(ServeSettings(run_dir, backend=backend, port=port, threads=threads))
    constant = json.dumps({"outputs": [{"name": "digit", "datatype": "INT64", "shape": [1], "data": [7]}]}).encode()

    @app.post("/bench/constant")
    async def bench_constant(request: Request):
        await request.body()
        return Response(constant, media_type="application/json")

    app.router.routes.insert(0, app.router.routes.pop())  # matched first, like the service's own hot routes
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(path: str, body: bytes, extra_headers: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra_headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def client(port: int, request: bytes, stop_at: float, warm_until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (start := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:"))
            await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"answer {status}")
            if start >= warm_until:
                latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def measure(port: int, request: bytes, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    now = time.perf_counter()
    warm_until, stop_at = now + 1.0, now + 1.0 + seconds
    await asyncio.gather(*(client(port, request, stop_at, warm_until, latencies) for _ in range(clients)))
    lat = np.array(latencies) * 1000
    return {"requests_per_s": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "requests": len(lat)}


def bodies(api: str, images: np.ndarray, model: str) -> tuple[str, bytes, str]:
    """(path, body, extra headers) of one request."""
    n = len(images)
    if api == "v1":
        pixels = images[0].ravel().tolist() if n == 1 else images.reshape(n, -1).tolist()
        return "/v1/predict", json.dumps({"pixels": pixels}, separators=(",", ":")).encode(), ""
    tensor = {"name": "images", "shape": [n, 784], "datatype": "UINT8"}
    if api == "v2-binary":  # the binary tensor extension: raw bytes after the JSON header, as tritonclient sends
        header = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": images.nbytes}}]}).encode()
        return f"/v2/models/{model}/infer", header + images.tobytes(), f"Inference-Header-Content-Length: {len(header)}\r\n"
    body = {"inputs": [tensor | {"data": images.ravel().tolist()}]}
    return f"/v2/models/{model}/infer", json.dumps(body, separators=(",", ":")).encode(), ""


def start_server(run_dir: str, backend: str, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, run_dir, "--serve-backend", backend, "--port", str(port),
                             "--threads", str(threads)])
    deadline = time.monotonic() + 300  # the ONNX backend may export first
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the {backend} server failed to start")
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the {backend} server did not answer /healthz in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell (after 1 s warm-up)")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--batches", default="1,64", help="images per request")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--api", choices=["v1", "v2", "v2-binary"], default="v2",
                        help="request bodies: v1 JSON pixels, v2 JSON tensor (default), v2 binary tensor")
    parser.add_argument("--threads", type=int, default=1, help="the server's intra-op threads (as mnistlab serve --threads)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-backend", help=argparse.SUPPRESS)  # internal: run as the server
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        return serve_with_constant(args.run_dir, args.serve_backend, args.port, args.threads)

    from mnistlab.data.datasets import load_split
    from mnistlab.runs import read_config

    images = load_split(read_config(args.run_dir).dataset, "test")[0].numpy()
    model = Path(args.run_dir).resolve().name
    rows = []
    for backend in args.backends.split(","):
        proc, port = start_server(args.run_dir, backend, args.threads)
        try:
            for batch in (int(b) for b in args.batches.split(",")):
                path, body, extra = bodies(args.api, images[:batch], model)
                for clients in (int(c) for c in args.clients.split(",")):
                    for endpoint, target in (("constant", "/bench/constant"), (backend, path)):
                        r = asyncio.run(measure(port, request_bytes(target, body, extra), clients, args.seconds))
                        rows.append({"endpoint": endpoint, "backend": backend, "batch": batch, "clients": clients,
                                     "images_per_s": r["requests_per_s"] * batch, **r})
                        print(f"  {endpoint:<8} batch {batch:>3} clients {clients:>3}: {r['requests_per_s']:>8,.0f} req/s, "
                              f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait()
    conditions = {"cpu": cpu_name(), "cores": os.cpu_count(), "api": args.api, "server_threads": args.threads,
                  "seconds_per_cell": args.seconds, "load_average_1min": os.getloadavg()[0],
                  "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.json:
        print(json.dumps({"conditions": conditions, "rows": rows}, indent=2))
        return
    print(f"serve load: {conditions}")
    print(f"{'endpoint':<9} {'batch':>5} {'clients':>7} {'req/s':>9} {'images/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'of ceiling':>10}")
    ceiling = {(r["backend"], r["batch"], r["clients"]): r["requests_per_s"] for r in rows if r["endpoint"] == "constant"}
    for r in rows:
        share = r["requests_per_s"] / ceiling[(r["backend"], r["batch"], r["clients"])]
        print(f"{r['endpoint']:<9} {r['batch']:>5} {r['clients']:>7} {r['requests_per_s']:>9,.0f} {r['images_per_s']:>10,.0f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {share:>9.0%}")


if __name__ == "__main__":
    main()
