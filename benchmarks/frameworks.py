"""The PyTorch vs Keras table of docs/keras.md: one architecture, both frameworks, one machine, one run.

    python benchmarks/frameworks.py --arch simple --epochs 3 --out runs/bench-frameworks

Trains both twins with identical settings (full training split unless --train-subset), evaluates
them, and measures inference, each step in a fresh child process (see mnistlab.experiments.frameworks).
Prints the Markdown table with its conditions (CPU, threads, load average before and after, date);
the same table and the raw numbers are saved as frameworks.md / frameworks.json under --out.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="simple")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-frameworks")
    args = parser.parse_args()

    from mnistlab.experiments.frameworks import compare_frameworks, markdown_table

    result = compare_frameworks([], arch=args.arch, epochs=args.epochs, train_subset=args.train_subset,
                                threads=args.threads, seed=args.seed, out=args.out, force=True)
    print(markdown_table(result))


if __name__ == "__main__":
    main()
