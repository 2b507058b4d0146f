"""Wall time until `simple` (default recipe) first reaches 99% test accuracy.

    MNISTLAB_DATA_DIR=../shared/data python benchmarks/time_to_accuracy.py [--arch simple] [--target 0.99] [--epochs 8] [--seed 0]

This is a measurement, not a decision: the test split is scored after every epoch only to report
when the target was first crossed; nothing in training looks at it (checkpoints and stopping use
the validation split, as always). Time counts training and validation, not the test scoring.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from mnistlab.config import TrainConfig
from mnistlab.data.datasets import load_test_split
from mnistlab.frameworks.pytorch import normalize_images, torch_logits
from mnistlab.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="simple")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # A measurement, not a decision: when did the test accuracy first cross the target (see above).
    test_x, test_y = load_test_split("mnist", purpose="time-to-accuracy benchmark: report, never choose")
    data = {"mean": 0.1307, "std": 0.3081}
    x = normalize_images(test_x, data)
    timeline = []
    scoring = 0.0
    t0 = time.perf_counter()

    def score(row, model):
        nonlocal scoring
        s0 = time.perf_counter()
        acc = (torch_logits(model, x).argmax(1) == test_y).float().mean().item()
        scoring += time.perf_counter() - s0
        timeline.append({"epoch": int(row["epoch"]), "test_acc": round(acc, 4), "val_acc": round(row["val_acc"], 4),
                         "seconds": round(time.perf_counter() - t0 - scoring, 1)})
        print(json.dumps(timeline[-1]), flush=True)

    cfg = TrainConfig(arch=args.arch, epochs=args.epochs, seed=args.seed, patience=0)
    train(cfg, tempfile.mkdtemp(prefix="mnistlab-tta-"), progress=False, on_epoch_end=score)
    hit = next((t for t in timeline if t["test_acc"] >= args.target), None)
    print(json.dumps({"arch": args.arch, "target": args.target, "epochs_budget": args.epochs, "seed": args.seed,
                      "reached_at": hit}))


if __name__ == "__main__":
    main()
