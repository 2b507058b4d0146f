"""`mnistlab frameworks`: PyTorch vs Keras, side by side (`mnistlab ensemble` lives in ``commands/ensemble.py``)."""

from __future__ import annotations

import argparse

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table


def cmd_frameworks(args: argparse.Namespace) -> int:
    from mnistlab.experiments.frameworks import TABLE_COLUMNS, compare_frameworks, table_rows

    result = compare_frameworks(args.runs, arch=args.arch, out=args.out, epochs=args.epochs,
                                train_subset=args.train_subset, threads=args.threads, seed=args.seed, dataset=args.dataset,
                                data_dir=args.data_dir, force=args.force, progress=not args.quiet)
    if args.json:
        emit_json(result)
        return EXIT_OK
    c = result["conditions"]
    print_table(f"{c['arch']}: PyTorch vs Keras, {c['threads']} threads, {c['cpu']}", TABLE_COLUMNS,
                table_rows(result))
    print(f"table and JSON in {result['out']}")
    return EXIT_OK


def add_commands(command) -> None:
    """Add this feature's subcommands through ``command(name, func, help, ...)``."""
    from mnistlab.data.datasets import list_datasets
    from mnistlab.models import list_models

    p = command("frameworks", cmd_frameworks,
                "train (or take) a PyTorch and a Keras run of one architecture and compare them side by side")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="an evaluated PyTorch run and a Keras run to compare instead of training new ones")
    p.add_argument("--arch", choices=list_models(), default="simple",
                   help="architecture of both runs (default %(default)s)")
    p.add_argument("--dataset", choices=list_datasets(), default="mnist",
                   help="data set to train both on (given runs keep their own)")
    p.add_argument("--epochs", type=int, default=3,
                   help="most epochs of both runs; early stopping may end sooner (default %(default)s)")
    p.add_argument("--train-subset", type=int, help="train on this many images (default: all 55,000)")
    p.add_argument("--threads", type=int, help="threads for both frameworks (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (default %(default)s)")
    add_output_options(p, out="folder for both runs and the table (default runs/frameworks-<arch>-<time>)",
                       force="overwrite existing runs at --out")
