"""Inference latency and throughput of trained runs, per path and thread count (docs/deploy.md's table).

    python benchmarks/inference.py RUN_DIR [RUN_DIR ...] [--threads 1,2] [--quick] [--json]

Calls :func:`mnistlab.export.bench.bench_run` (the code behind ``mnistlab bench``) for every run
and thread count — exporting ONNX and INT8 first where they are missing — and prints one row per
(run, threads, path) with the conditions. Run it on an idle machine: other processes sharing the
cores distort latency percentiles badly (the load average is recorded with every result).
"""

from __future__ import annotations

import argparse
import json

from mnistlab.export.bench import BATCHES, bench_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--quick", action="store_true", help="0.3 s per measurement instead of 3 s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [bench_run(run, threads=int(t), quick=args.quick) for run in args.runs for t in args.threads.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    c = results[0]["conditions"]
    print(f"{c['cpu']}; torch {c['torch']}, onnxruntime {c['onnxruntime']}; {c['seconds_per_measurement']} s per "
          f"measurement; {c['date']}")
    header = f"{'arch':<8} {'thr':>3} {'path':<20} {'b1 p50 ms':>10} {'b1 p99 ms':>10}" + "".join(
        f" {'img/s @' + str(n):>12}" for n in BATCHES) + f" {'load':>5}"
    print(header)
    for r in results:
        for name, p in r["paths"].items():
            print(f"{r['arch']:<8} {r['threads']:>3} {name:<20} {p['batch1_p50_ms']:>10.4f} {p['batch1_p99_ms']:>10.4f}"
                  + "".join(f" {p[f'throughput_{n}']:>12,.0f}" for n in BATCHES)
                  + f" {r['conditions']['load_average_1min']:>5}")
    for r in results:
        sizes = ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in r["file_sizes"].items())
        print(f"{r['arch']}: {sizes}")


if __name__ == "__main__":
    main()
