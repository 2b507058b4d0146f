"""What logging the model costs ``--track mlflow``: one run logged with and without its model.

    python benchmarks/track_model_cost.py RUN [--repeats 2] [--threads N]

Logs the run ``RUN`` into a fresh SQLite store in a temporary folder (the store is created first,
outside the timings), alternately without its model and with it (exported in a scratch copy, with
the export's self-check), and prints the seconds of each; needs ``mnistlab[track,deploy]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from mnistlab.tracking import Tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker.parse("mlflow", beside=tmp)
        tracker.prepare("cost")
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for model in (False, True):
                start = time.perf_counter()
                tracker.log_run(args.run, experiment="cost", model=model)
                seconds[model].append(time.perf_counter() - start)
    for model, times in seconds.items():
        print(
            f"{'with' if model else 'without'} the model: median {statistics.median(times):.1f} s "
            f"({', '.join(f'{t:.1f}' for t in times)}), {torch.get_num_threads()} threads"
        )


if __name__ == "__main__":
    main()
