"""Accuracy with and without bf16 training (``--amp on`` against ``--amp off``) on this CPU: the table
that decides whether ``--amp auto`` may become the default (issue 23; ``config.DEFAULT_AMP``).

    python benchmarks/amp_accuracy.py [--archs simple,deeper,resnet] [--seeds 0,1,2] [--epochs N]
        [--train-subset N] [--threads N] [--out DIR] [--json]

For every model and seed it trains the quickstart's recipe (the default preset, ``patience 0``,
the quickstart's epochs for that model on MNIST unless ``--epochs``) twice, in float32 and in
bf16 autocast, evaluates both on the test split, and prints validation accuracy (the selected
checkpoint's; what the decision rests on) and test accuracy as mean ± sample std side by side,
with the CPU named (model, native bf16 units or not), the threads, torch's version and the date.
Each run's ``training.json`` is checked to have trained in the precision asked for. With
``--out`` the runs are kept, and a finished, evaluated run found there is reused, so a long
table can be completed in several sittings. A quick try: ``--archs simple --seeds 0 --epochs 1
--train-subset 2000`` (such numbers say nothing about accuracy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from mnistlab import runs
from mnistlab.config import preset
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.experiments.quickstart import max_epochs
from mnistlab.fileio import read_json
from mnistlab.maths.spread import mean_std_text, spread
from mnistlab.training.precision import cpu_bf16
from mnistlab.training.trainer import train

PRECISIONS = {"float32": "off", "bf16": "on"}  # what the table shows → the --amp that trains it on a CPU


def one_run(arch: str, seed: int, precision: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train and evaluate one (arch, seed, precision), or read it back when ``out`` already holds it."""
    run_dir = out / f"{arch}-s{seed}-{precision}"
    if not (run_dir / runs.METRICS).is_file():
        epochs = args.epochs or max_epochs("mnist", arch, arch)
        cfg = preset(
            "default",
            arch=arch,
            seed=seed,
            patience=0,
            epochs=epochs,
            amp=PRECISIONS[precision],
            device="cpu",
            threads=args.threads,
            train_subset=args.train_subset,
        )
        print(f"training {run_dir.name} ({epochs} epochs)", file=sys.stderr, flush=True)
        train(cfg, run_dir, progress=False, force=True)
        evaluate_run(run_dir)
    training, metrics = read_json(run_dir / runs.TRAINING), read_json(run_dir / runs.METRICS)
    if training.get("precision") != precision:
        raise SystemExit(f"{run_dir}: trained in {training.get('precision')}, not {precision}")
    return {
        "arch": arch,
        "seed": seed,
        "precision": precision,
        "epochs": training["epochs_run"],
        "val_acc": training["best_val_acc"],
        "test_acc": metrics["accuracy"],
        "train_seconds": training["train_seconds"],
        "run_dir": str(run_dir),
    }


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arch: val and test accuracy mean ± std for each precision, and bf16's training time ratio."""
    out = []
    for arch in dict.fromkeys(r["arch"] for r in rows):
        by = {p: [r for r in rows if r["arch"] == arch and r["precision"] == p] for p in PRECISIONS}
        entry: dict[str, Any] = {
            "arch": arch,
            "seeds": [r["seed"] for r in by["float32"]],
            "epochs": by["float32"][0]["epochs"],
        }
        for p, members in by.items():
            for key in ("val_acc", "test_acc"):
                s = spread(r[key] for r in members)
                entry[f"{key}_{p}"] = {"mean": s["mean"], "std": s["std"]}
        seconds = {p: sum(r["train_seconds"] for r in members) for p, members in by.items()}
        entry["bf16_time_ratio"] = round(seconds["bf16"] / seconds["float32"], 3)
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="simple,deeper,resnet")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the quickstart's epochs per model")
    parser.add_argument("--train-subset", type=int, default=None, help="a quick try only")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="keep (and reuse) the runs here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cpu = cpu_bf16()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = [
            one_run(arch, seed, p, args, out) for arch in args.archs.split(",") for seed in seeds for p in PRECISIONS
        ]
    conditions = {
        "cpu": cpu.model,
        "native_bf16": cpu.native or "no",
        "cpu_capability": cpu.capability,
        "threads": args.threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "train_subset": args.train_subset,
        "date": dt.date.today().isoformat(),
    }
    result = {"conditions": conditions, "table": table(rows), "runs": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"CPU: {cpu.model} (native bf16: {conditions['native_bf16']}; {cpu.capability}); "
        f"{conditions['threads']} threads; torch {torch.__version__}; {conditions['date']}"
    )
    print(
        "| model | epochs | seeds | val acc float32 | val acc bf16 | test acc float32 | test acc bf16 | "
        "bf16 train time / float32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for e in result["table"]:
        cells = [
            mean_std_text(e[f"{k}_{p}"]["mean"], e[f"{k}_{p}"]["std"])
            for k in ("val_acc", "test_acc")
            for p in PRECISIONS
        ]
        print(
            f"| {e['arch']} | {e['epochs']} | {','.join(map(str, e['seeds']))} | "
            + " | ".join(cells)
            + f" | {e['bf16_time_ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
