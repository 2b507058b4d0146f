"""Time `mnistlab plots` (analyze_run) and `mnistlab report` (build_report) on existing runs.

    python benchmarks/analysis_time.py runs/qs/simple runs/qs/deeper --mc-limit 1000

Each run is analysed from scratch (its analysis.json and mc_dropout.npz removed first), then one
report of all runs is built. Prints one JSON object: seconds per run, report seconds and bytes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mnistlab.analysis.analyze import ANALYSIS, MC_FILE, analyze_run
from mnistlab.report.html import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--mc-limit", type=int)
    parser.add_argument("--out", default=None, help="report path (default <first run>/../report-bench.html)")
    args = parser.parse_args()
    timings = {}
    for run in map(Path, args.run_dirs):
        for name in (ANALYSIS, MC_FILE):
            (run / name).unlink(missing_ok=True)
        t0 = time.perf_counter()
        summary = analyze_run(run, mc_limit=args.mc_limit)
        timings[str(run)] = {"plots_seconds": round(time.perf_counter() - t0, 2),
                             "mc_dropout": summary["uncertainty"]["mc_dropout"]}
    out = Path(args.out or Path(args.run_dirs[0]).parent / "report-bench.html")
    t0 = time.perf_counter()
    build_report(args.run_dirs, out)
    print(json.dumps({"runs": timings, "report_seconds": round(time.perf_counter() - t0, 2),
                      "report_bytes": out.stat().st_size}, indent=2))


if __name__ == "__main__":
    main()
