"""`mnistlab quickstart`: the main job (data, three architectures and a Keras twin, evaluation, report).

    mnistlab quickstart --smoke --out runs/qs-smoke     # seconds: checks that everything runs
    mnistlab quickstart                                 # the README's figures, within 15 minutes
    mnistlab quickstart --budget 30 --dataset fashion-mnist
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table


def cmd_quickstart(args: argparse.Namespace) -> int:
    from mnistlab.experiments.quickstart import default_out, quickstart

    out = Path(args.out) if args.out else default_out()
    result = quickstart(out, smoke=args.smoke, budget_min=args.budget, dataset=args.dataset, data_dir=args.data_dir,
                        seed=args.seed, force=args.force, progress=not args.quiet,
                        models=tuple(args.models.split(",")) if args.models else None)
    if args.json:
        emit_json(result)
        return EXIT_OK
    rows = result["models"]
    tta = any(r.get("tta") for r in rows)  # a column only where some model was scored with TTA (chosen on validation)
    print_table(f"quickstart{' (smoke)' if args.smoke else ''}: {args.dataset} test set, seed {args.seed}",
                ["arch", "framework", "test acc", "val acc", "params", "epochs", "train s", "samples/s",
                 "size KB", "ECE"] + (["TTA"] if tta else []),
                [(r["arch"], r["framework"], f"{r['test_accuracy']:.4f}", f"{r['val_accuracy']:.4f}",
                  f"{r['params']:,}", r["epochs"] or "—", f"{r['train_seconds']:.0f}",
                  f"{r['samples_per_s']:,.0f}" if r["samples_per_s"] else "—",
                  f"{r['model_bytes'] / 1024:.0f}", f"{r['ece']:.4f}") + ((r.get("tta") or "—",) if tta else ())
                 for r in rows])
    budget = result["budget"]
    print(f"runs in {out}; total {result['total_seconds']:.0f}s"
          + (f" (budget {budget['budget_s'] / 60:g} min, planned {budget['planned_s']:.0f}s)" if budget else ""))
    print(f"report: {result['report']}")
    return EXIT_OK


def add_commands(command) -> None:
    """Add ``quickstart`` through ``command(name, func, help, ...)``."""
    from mnistlab.data.registry import names
    from mnistlab.experiments.quickstart import BUDGET_MIN, default_models

    p = command("quickstart", cmd_quickstart, "fetch data, train the three architectures, evaluate, compare")
    p.add_argument("--smoke", action="store_true", help="tiny budget (seconds): checks that everything runs")
    p.add_argument("--budget", type=float, default=BUDGET_MIN, metavar="MIN",
                   help="wall-time budget in minutes for the whole job; each model's epochs are chosen from "
                        "its measured speed to fit it (default %(default)g; ignored with --smoke)")
    p.add_argument("--dataset", choices=names(), default="mnist", help="data set (default %(default)s)")
    defaults = "; ".join(f"{name}: {','.join(default_models(name))}" for name in names())
    p.add_argument("--models", help=f"comma-separated models, 'keras:' for the Keras twin (default: {defaults})")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every model's initialisation, shuffling, augmentation and dropout; the "
                        "validation split stays the same (default %(default)s)")
    add_output_options(p, out="folder for the runs (default runs/quickstart-<time>)",
                       force="overwrite existing runs at --out")
