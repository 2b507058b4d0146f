"""Wall time and accuracy of the full quickstart (the README's first command), one seed.

    MNISTLAB_DATA_DIR=../shared/data python benchmarks/quickstart_time.py [--seed 0] [--out DIR] \
        [--budget 15] [--dataset mnist|fashion-mnist]

Prints the quickstart's JSON summary (per-model test accuracy, train seconds, samples/s) and the
total wall time. The test split is read once per model, after training, by `evaluate`.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from mnistlab.experiments.quickstart import quickstart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--models", default=None, help="comma-separated; default: the data set's own (quickstart)")
    parser.add_argument("--budget", type=float, default=15.0, help="minutes of wall time for the whole job")
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="mnistlab-quickstart-")
    models = tuple(args.models.split(",")) if args.models else None
    result = quickstart(out, seed=args.seed, force=True, models=models, progress=True, budget_min=args.budget,
                        dataset=args.dataset)
    print(json.dumps({"seed": args.seed, **result}, indent=2))


if __name__ == "__main__":
    main()
