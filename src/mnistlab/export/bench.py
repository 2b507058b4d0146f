"""Inference benchmark: latency at batch 1 and throughput at batch 256 and 1024, per path.

Every measurement is a time box, so even ``quick`` takes several seconds per path::

    from mnistlab.export.bench import bench_run

    result = bench_run("runs/simple", quick=True)    # exports ONNX and INT8 first when missing
    sorted(result["paths"])       # ['int8', 'onnxruntime', 'torch_channels_last', 'torch_eager']

Paths: PyTorch eager (NCHW), PyTorch channels-last (NHWC), ONNX Runtime fp32 and ONNX Runtime
INT8. Every path gets pixels in [0, 1] and includes the normalisation, as a client would.
Each measurement warms up first, then repeats until its time box is spent (at least
``mnistlab.timing.MIN_REPS`` calls); batch-1 latency is reported as p50/p99 of single calls, throughput as
images per second over the whole box. The result is also written to ``<run_dir>/bench.json``
(beside, not inside, ``export/``: it is nested, and ``export/*.json`` are kept flat for reports).
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import frameworks, runs
from mnistlab.data.datasets import load_test_split
from mnistlab.errors import UserError
from mnistlab.export import (
    BENCH_PATHS,
    BENCH_REPORT,
    EXPORT_DIR,
    INT8_FILE,
    INT8_REPORT,
    ONNX_FILE,
    ONNX_REPORT,
    export_path,
    require_deploy_extra,
)
from mnistlab.export.onnx_runtime import reusable_export
from mnistlab.fileio import write_json
from mnistlab.timing import batch1_latency, throughput
from mnistlab.training.progress import WorkProgress

PATHS = BENCH_PATHS
BATCHES = (256, 1024)
FULL_SECONDS, QUICK_SECONDS = 3.0, 0.3  # time per measurement: for a README figure, for a test


def _torch_fn(model: torch.nn.Module, channels_last: bool) -> Callable[[torch.Tensor], Any]:
    if channels_last:  # a copy: ``.to`` converts in place and the eager path shares the module
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run(x: torch.Tensor):
        with torch.inference_mode():
            return model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    return run


def _ort_fn(path: Path, threads: int) -> Callable[[np.ndarray], Any]:
    from mnistlab.export.onnx_runtime import session

    sess = session(path, threads)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})


def conditions(threads: int, seconds: float, dataset: str = "mnist") -> dict[str, Any]:
    """What the numbers depend on: hardware, versions, threads, load, time box."""
    import onnxruntime

    env = runs.environment()
    return {
        "cpu": env["cpu"], "cpu_count": env["cpu_count"], "threads": threads,
        "torch": env["torch"], "onnxruntime": onnxruntime.__version__, "python": env["python"],
        "platform": platform.platform(),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "seconds_per_measurement": seconds, "warmup": "0.2 s (batch 1) / 2 calls (batches)",
        "input": f"{dataset} test images as float32 pixels in [0,1]; normalisation included in every path",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


@runs.writes_run
def bench_run(run_dir: str | Path, *, threads: int | None = None, quick: bool = False, export: bool = True,
              data_dir: str | None = None, paths: tuple[str, ...] = PATHS) -> dict[str, Any]:
    """Benchmark every available inference path of a run; write and return ``<run_dir>/bench.json``.

    Missing ONNX files are exported on the fly when ``export`` is true, else those paths are
    skipped and the reason is listed under ``skipped``.
    """
    require_deploy_extra()
    from mnistlab.export.onnx_export import NormalizedModel

    unknown = set(paths) - set(PATHS)
    if unknown:
        raise UserError(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}")
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    framework = frameworks.of_run(config, run_dir)
    model = framework.load_model(run_dir)
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    result: dict[str, Any] = {"run_dir": str(run_dir), "arch": config.arch, "threads": threads,
                              "quick": quick, "conditions": conditions(threads, seconds, config.dataset),
                              "paths": {}, "skipped": {}, "exported": []}

    files = {"onnxruntime": export_path(run_dir, ONNX_FILE), "int8": export_path(run_dir, INT8_FILE)}
    reports = {"onnxruntime": ONNX_REPORT, "int8": INT8_REPORT}
    for name, path in files.items():
        # An existing file is reused only if it is what this tool exported from the current weights.
        if name in paths and not reusable_export(run_dir, path.name, reports[name]):
            if not export:
                result["skipped"][name] = f"{path.relative_to(run_dir)} missing or not the recorded export; run " \
                                          f"'mnistlab export --format {'onnx' if name == 'onnxruntime' else 'int8'}' " \
                                          "or drop --no-export"
                continue
            if name == "onnxruntime":
                framework.export(run_dir, "onnx", data_dir=data_dir, threads=threads)
            else:
                from mnistlab.export.quantize import export_int8
                export_int8(run_dir, data_dir=data_dir, threads=threads, seconds=0.2)
            result["exported"].append(str(path.relative_to(run_dir)))

    # Timing inputs only (no label is read): real images, so activations look like the service's.
    test_x, _ = load_test_split(config.dataset, data_dir, purpose="benchmark inputs: real images to time")
    from mnistlab.export.onnx_runtime import unit_images

    x = unit_images(test_x[: max(BATCHES)].numpy())
    fns: dict[str, Callable[[Any], Any]] = {}
    for name in paths:
        if name.startswith("torch") and not isinstance(model, torch.nn.Module):
            result["skipped"][name] = f"a {framework.label} run: this path times a PyTorch model"
        if name in result["skipped"]:
            continue
        if name.startswith("torch"):
            wrapped = NormalizedModel(model, config.data.mean, config.data.std).eval()
            fns[name] = _torch_fn(wrapped, channels_last=name == "torch_channels_last")
        else:
            fns[name] = _ort_fn(files[name], threads)
    with WorkProgress(f"bench {run_dir.name}", total=len(fns) * (1 + len(BATCHES)), unit="measurements") as work:
        for name, fn in fns.items():
            batch = (lambda n: torch.from_numpy(x[:n])) if name.startswith("torch") else (lambda n: x[:n])
            work.advance(0, step=f"{name} batch 1")
            lat = batch1_latency(fn, batch(1), seconds)
            row = {"batch1_p50_ms": lat["p50_ms"], "batch1_p99_ms": lat["p99_ms"], "batch1_reps": lat["reps"]}
            for n in BATCHES:
                work.advance(1, step=f"{name} batch {n}")
                row[f"throughput_{n}"] = throughput(fn, batch(n), seconds)
            work.advance(1)
            result["paths"][name] = row

    weights = runs.weights_path(run_dir, config)
    sizes = {weights.name: weights, f"{EXPORT_DIR}/{ONNX_FILE}": files["onnxruntime"],
             f"{EXPORT_DIR}/{INT8_FILE}": files["int8"]}
    result["file_sizes"] = {k: p.stat().st_size for k, p in sizes.items() if p.is_file()}
    if result["paths"]:
        best_lat = min(result["paths"].items(), key=lambda kv: kv[1]["batch1_p50_ms"])
        best_tp = max(result["paths"].items(), key=lambda kv: max(kv[1][f"throughput_{n}"] for n in BATCHES))
        result["best"] = {"batch1_path": best_lat[0], "batch1_p50_ms": best_lat[1]["batch1_p50_ms"],
                          "throughput_path": best_tp[0],
                          "throughput": max(best_tp[1][f"throughput_{n}"] for n in BATCHES)}
    write_json(run_dir / BENCH_REPORT, result)
    return result
