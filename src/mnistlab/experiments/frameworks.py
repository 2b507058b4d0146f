"""PyTorch vs Keras on one architecture, measured in one run on one machine.

Both frameworks train ``simple`` for three epochs on all of MNIST, so this takes minutes::

    from mnistlab.experiments.frameworks import compare_frameworks

    result = compare_frameworks([], arch="simple", epochs=3, out="runs/fw")
    [row["test_accuracy"] for row in result["rows"]]     # [0.99..., 0.99...]

Each measurement runs in a fresh child process (``python -m mnistlab.experiments.frameworks``), one
framework at a time, so peak memory is the child's own maximum resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``: framework import + data + model + work) and neither
framework's thread pool or allocator disturbs the other's timings. Per framework: a *train*
child (train with identical settings, then evaluate) and an *inference* child (load the saved
model, time batch-1 latency and batch-256 throughput on test images, with the same thread count).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab.errors import UserError
from mnistlab.fileio import read_json, write_json, write_text
from mnistlab.frameworks import FRAMEWORKS, label

TABLE_COLUMNS = ["", *(label(fw) for fw in FRAMEWORKS)]
_ROWS = [  # (label, key, format)
    ("test accuracy", "test_accuracy", "{:.4f}"),
    ("train wall time (s)", "train_seconds", "{:.1f}"),
    ("training samples/s", "train_samples_per_s", "{:,.0f}"),
    ("latency, batch 1, p50 (ms)", "latency_ms_p50", "{:.3f}"),
    ("throughput, batch 256 (images/s)", "throughput_b256", "{:,.0f}"),
    ("parameters", "params", "{:,}"),
    ("model file (KB)", "model_kb", "{:.0f}"),
    ("peak memory, train + evaluate (MB RSS)", "peak_rss_train_mb", "{:.0f}"),
    ("peak memory, inference (MB RSS)", "peak_rss_infer_mb", "{:.0f}"),
    ("epochs (best)", "epochs", "{}"),
]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_inference(run_dir: Path, framework: str, threads: int, *, data_dir: str | None = None,
                      latency_calls: int = 300, seconds: float = 3.0) -> dict[str, float]:
    """p50/p90 latency of one image and images/s at batch 256, after warm-up, on test images."""
    from mnistlab import runs
    from mnistlab.data.datasets import load_test_split
    from mnistlab.timing import throughput

    # Timing inputs only (no label is read): the same real test images for both frameworks.
    dataset = runs.read_config(run_dir).dataset
    images = load_test_split(dataset, data_dir, purpose="framework comparison: inputs to time")[0][:256].numpy()
    from mnistlab import frameworks

    call, prepare = frameworks.get(framework).inference_parts(run_dir, runs.read_config(run_dir), threads)
    singles = [prepare(images[i % len(images)][None]) for i in range(latency_calls)]
    batch = prepare(images)
    for x in singles[:30]:
        call(x)
    times = []
    for x in singles:
        t0 = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t0)
    return {"latency_ms_p50": statistics.median(times) * 1e3,
            "latency_ms_p90": float(np.percentile(times, 90)) * 1e3,
            "throughput_b256": throughput(call, batch, seconds)}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    """The work of one child process; returns what the parent records."""
    run_dir = Path(spec["run_dir"])
    if spec["task"] == "train":
        from mnistlab import frameworks
        from mnistlab.config import TrainConfig
        from mnistlab.evaluation.evaluate import evaluate_run

        cfg = TrainConfig.from_dict(spec["config"])
        frameworks.get(cfg.framework).train(cfg, run_dir, data_dir=spec["data_dir"], force=spec["force"],
                                            progress=spec["progress"])
        evaluate_run(run_dir, data_dir=spec["data_dir"])
        return {"peak_rss_train_mb": _peak_rss_mb()}
    result = measure_inference(run_dir, spec["framework"], spec["threads"], data_dir=spec["data_dir"],
                               latency_calls=spec["latency_calls"], seconds=spec["seconds"])
    return {**result, "peak_rss_infer_mb": _peak_rss_mb()}


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "mnistlab.experiments.frameworks", json.dumps(spec)],
                          stdout=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode != 0:
        raise RuntimeError(f"the {spec['framework']} {spec['task']} step failed (exit {proc.returncode}); see stderr")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pick_runs(run_dirs: Sequence[str | Path]) -> dict[str, Path]:
    from mnistlab import runs

    if len(run_dirs) != 2:
        raise UserError("give exactly two runs (one PyTorch, one Keras) or none to train both")
    by_fw = {runs.read_config(d).framework: Path(d) for d in run_dirs}
    if set(by_fw) != set(FRAMEWORKS):
        raise UserError("give one PyTorch run and one Keras run (see 'framework' in their config.json)")
    archs = {runs.read_config(d).arch for d in by_fw.values()}
    if len(archs) != 1:
        raise UserError(f"the runs have different architectures ({', '.join(sorted(archs))}); compare twins")
    datasets = {runs.read_config(d).dataset for d in by_fw.values()}
    if len(datasets) != 1:
        raise UserError(f"the runs were trained on different data sets ({', '.join(sorted(datasets))}); compare twins")
    for d in by_fw.values():
        if not (d / runs.METRICS).is_file():
            raise UserError(f"{d}: not evaluated; run 'mnistlab evaluate {d}' first")
    return by_fw


def compare_frameworks(run_dirs: Sequence[str | Path] = (), *, arch: str = "simple", out: str | Path | None = None,
                       epochs: int = 3, train_subset: int | None = None, threads: int | None = None,
                       seed: int = 0, data_dir: str | None = None, force: bool = False, progress: bool = True,
                       latency_calls: int = 300, seconds: float = 3.0, dataset: str = "mnist") -> dict[str, Any]:
    """Train (or take) a PyTorch and a Keras run, measure both, write ``frameworks.json`` and ``.md``.

    New runs train on ``dataset``; given runs keep their own (both must share one).

    ``latency_calls`` batch-1 calls are timed, and batch-256 calls repeat for ``seconds``.
    """
    from mnistlab import frameworks, runs
    from mnistlab.config import preset

    frameworks.get("keras")  # a one-line error without mnistlab[keras]
    threads = threads or os.cpu_count() or 1
    load_before = os.getloadavg()
    peaks: dict[str, dict[str, Any]] = {fw: {} for fw in FRAMEWORKS}
    if run_dirs:
        by_fw = _pick_runs(run_dirs)
        first = runs.read_config(by_fw[FRAMEWORKS[0]])
        arch, dataset = first.arch, first.dataset
    out = Path(out) if out else runs.default_run_dir(f"frameworks-{arch}")
    if not run_dirs:
        by_fw = {fw: out / fw for fw in FRAMEWORKS}
        for fw in FRAMEWORKS:
            cfg = preset("default", arch=arch, framework=fw, epochs=epochs, train_subset=train_subset, threads=threads,
                         seed=seed, dataset=dataset)
            peaks[fw] = _run_child({"task": "train", "framework": fw, "run_dir": str(by_fw[fw]), "config": cfg.to_dict(),
                                    "data_dir": data_dir, "force": force, "progress": progress})
    rows = []
    for fw in FRAMEWORKS:
        d = by_fw[fw]
        infer = _run_child({"task": "infer", "framework": fw, "run_dir": str(d), "threads": threads,
                            "data_dir": data_dir, "latency_calls": latency_calls, "seconds": seconds})
        config, metrics, training = runs.read_config(d), read_json(d / runs.METRICS), read_json(d / runs.TRAINING)
        model_file = runs.weights_path(d, config)
        rows.append({"framework": fw, "run_dir": str(d), "test_accuracy": metrics["accuracy"],
                     "train_seconds": training["train_seconds"], "train_samples_per_s": training["samples_per_s"],
                     **infer, "params": config.params, "model_file": model_file.name,
                     "model_kb": model_file.stat().st_size / 1024,
                     "peak_rss_train_mb": peaks[fw].get("peak_rss_train_mb"),
                     "epochs": f"{training['epochs_run']} ({training['best_epoch']})"})
    reference = runs.read_config(by_fw[FRAMEWORKS[0]])
    env = {k: v for fw in FRAMEWORKS for k, v in runs.read_config(by_fw[fw]).environment.items()}  # every version
    train = reference.train
    result = {"out": str(out), "rows": rows, "conditions": {
        "arch": arch, "dataset": dataset, "epochs": train.epochs, "train_subset": train.train_subset, "seed": train.seed,
        "batch_size": train.batch_size, "threads": threads,
        "train_threads": reference.threads, "cpu": env.get("cpu"), "cpu_count": os.cpu_count(),
        "torch": env.get("torch"), "tensorflow": env.get("tensorflow"), "keras": env.get("keras"),
        "load_avg_before": [round(v, 2) for v in load_before], "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "peak_memory": "ru_maxrss of a fresh child process per framework and step"}}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "frameworks.json", result)
    write_text(out / "frameworks.md", markdown_table(result))
    return result


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per measure, one column per framework."""
    by_fw = {r["framework"]: r for r in result["rows"]}

    def cell(fw: str, key: str, fmt: str) -> str:
        value = by_fw[fw].get(key)
        return "n/a" if value is None else fmt.format(value)

    return [[label] + [cell(fw, key, fmt) for fw in FRAMEWORKS] for label, key, fmt in _ROWS]


def markdown_table(result: dict[str, Any]) -> str:
    c = result["conditions"]
    lines = [f"| {c['arch']} | PyTorch {c['torch']} | Keras {c['keras']} (TF {c['tensorflow']}) |",
             "|---|---:|---:|"]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(result)]
    subset = "all" if c["train_subset"] is None else f"{c['train_subset']:,}"
    lines.append("")
    lines.append(f"{c['epochs']} epochs max on {subset} {c.get('dataset', 'mnist')} training images, batch {c['batch_size']}, seed {c['seed']}; "
                 f"{c['train_threads']} threads for training, {c['threads']} for inference, on {c['cpu']} "
                 f"({c['cpu_count']} cores); load average "
                 f"{c['load_avg_before'][0]} before, {c['load_avg_after'][0]} after; {c['date']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
