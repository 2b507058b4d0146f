"""One line per finished run and per time-to-accuracy race in a folder.

    python benchmarks/gpu_summary.py /tmp/gpu-check

Used by benchmarks/gpu_check.sh at the end of its call, so the figures are in the call's output even
when its files do not come back.
"""

from __future__ import annotations

import json
import pathlib
import sys


def runs(work: pathlib.Path) -> None:
    for metrics in sorted(work.glob("*/*/metrics.json")):
        training = json.loads((metrics.parent / "training.json").read_text())
        print(metrics.parent.relative_to(work), "val", training["best_val_acc"],
              "test", json.loads(metrics.read_text())["accuracy"], "train s", training["train_seconds"])


def races(work: pathlib.Path) -> None:
    for path in sorted(work.glob("tta-*.json")):
        try:
            summary = json.loads(path.read_text())
        except ValueError:  # a race cut off by its time-out left no JSON
            continue
        for r in summary["recipes"]:
            print(path.stem, r["recipe"], r["reached"], "/", r["seeds"], "mean s", r["mean_seconds"],
                  "max s", r["max_seconds"], "acc", round(r["mean_final_acc"], 4))
        print(path.stem, "cli s", summary.get("cli_seconds"))


if __name__ == "__main__":
    folder = pathlib.Path(sys.argv[1])
    runs(folder)
    races(folder)
