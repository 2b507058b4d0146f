"""`mnistlab transfer` and `mnistlab transfer-curve`: start runs from another data set's run.

    mnistlab transfer runs/simple-mnist --to fashion-mnist --mode finetune --train-subset 1000
    mnistlab transfer runs/simple-mnist --to fashion-mnist --mode finetune --train-subset 1000 --out runs/t --resume
    mnistlab transfer-curve runs/simple-mnist --to fashion-mnist --subsets 100,1000,10000,all --seeds 0,1,2

The logic lives in :mod:`mnistlab.transfer`; this module parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table
from mnistlab.commands.repeats import add_repeat_options

BUDGET_HELP = ("default budget (the same for every mode): about 400 optimiser steps, batches of n/16 images "
               "(16..128), 3 to 40 epochs: 100 labels → 40 epochs of 16, 1,000 → 24 of 62, "
               "10,000 → 6 of 128, all 55,000 → 3 of 128")


def cmd_transfer(args: argparse.Namespace) -> int:
    from mnistlab.transfer import transfer_run

    summary = transfer_run(args.run_dir, args.to, args.mode, recipe=args.recipe, train_subset=args.train_subset,
                           epochs=args.epochs, seed=args.seed, out=args.out, data_dir=args.data_dir,
                           force=args.force, resume=args.resume, progress=not args.quiet, threads=args.threads)
    if args.json:
        emit_json(summary)
        return EXIT_OK
    print(f"run: {summary['run_dir']}  ({args.mode}, recipe {summary['recipe']})")
    for trial in summary.get("trials", []):
        print(f"  trial {trial['recipe']:<11} val acc {trial['best_val_acc']:.4f}, "
              f"val loss {trial['best_val_loss']:.4f}")
    print(f"best epoch {summary['best_epoch']}/{summary['epochs_run']}: val acc {summary['best_val_acc']:.4f}, "
          f"val loss {summary['best_val_loss']:.4f}; {summary['train_seconds']:.0f}s")
    print(f"next: mnistlab evaluate {summary['run_dir']}")
    return EXIT_OK


def cmd_curve(args: argparse.Namespace) -> int:
    from mnistlab.commands.repeats import repeat_options, resume_line
    from mnistlab.experiments.multiseed import parse_seeds
    from mnistlab.experiments.transfer_curve import accuracy_text, parse_subsets, transfer_curve

    out = Path(args.out or f"runs/transfer-curve-{args.to}")
    result = transfer_curve(args.run_dir, args.to, parse_subsets(args.subsets), parse_seeds(args.seeds),
                            out=out, modes=[m for m in args.modes.split(",") if m], epochs=args.epochs,
                            data_dir=args.data_dir, force=args.force, progress=not args.quiet, threads=args.threads,
                            options=repeat_options(args), resume_command=resume_line(args, str(out)))
    if args.json:
        emit_json(result)
        return EXIT_OK
    modes = result["conditions"]["modes"]
    by = {(r["subset"], r["mode"]): r for r in result["summary"]}
    subsets = list(dict.fromkeys(r["subset"] for r in result["summary"]))
    rows = [[by[(s, modes[0])]["n_train"], *(accuracy_text(by[(s, m)]) for m in modes)] for s in subsets]
    print_table(f"test accuracy (%) on {args.to}, mean ± std over seeds {args.seeds}",
                ["labelled images", *modes], rows)
    print(f"files: {out}/curve.md, curve.csv, curve.json, curve.png")
    return EXIT_OK


def add_commands(command) -> None:
    """Add ``transfer`` and ``transfer-curve`` through ``command(name, func, help, ...)``."""
    from mnistlab.config import TRANSFER_MODES
    from mnistlab.data.datasets import list_datasets

    recipes = sorted({r for rs in TRANSFER_MODES.values() for r in rs})
    p = command("transfer", cmd_transfer, "train a run on another data set starting from RUN_DIR's weights")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished PyTorch run on another data set (the source)")
    p.add_argument("--to", required=True, choices=list_datasets(), help="the target data set")
    p.add_argument("--mode", required=True, choices=list(TRANSFER_MODES),
                   help="finetune: every layer from the source, a new classifier; features: frozen body, only "
                        "a new linear classifier trains; scratch: same architecture and budget, random start")
    p.add_argument("--recipe", default="auto", choices=["auto", *recipes],
                   help="finetune's recipe: all (one learning rate), lower-body (the body at lr/3), head-first "
                        "(the classifier alone for the first fifth of the epochs); auto (default) trains each and "
                        "keeps the best on validation")
    p.add_argument("--train-subset", type=int, metavar="N", help="labelled target images (stratified; default all)")
    p.add_argument("--epochs", type=int, help=BUDGET_HELP)
    p.add_argument("--seed", type=int, default=0, help="seed for the new classifier, shuffling and augmentation")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--resume", action="store_true",
                   help="continue the stopped transfer at --out (the same options): finished recipe trials are "
                        "reused, a stopped one continues from its last epoch")
    add_output_options(p, out="the new run directory (default runs/<arch>-<target>-<mode>-<time>)",
                       force="overwrite an existing run at --out")

    p = command("transfer-curve", cmd_curve,
                "test accuracy vs labelled target images for finetune, features and scratch (mean ± std over seeds)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished PyTorch run on another data set (the source)")
    p.add_argument("--to", required=True, choices=list_datasets(), help="the target data set")
    p.add_argument("--subsets", default="100,1000,10000,all",
                   help="labelled-image counts, nested and stratified ('all' = 55,000). Expected time for `simple`, "
                     "3 modes (finetune trains its 3 recipes: 5 trainings per point): about 40 s per point for "
                     "100, 1,000 and 10,000 and 100 s for all, so 10-15 min for the defaults on an idle 2-core "
                     "machine training ~9,000 images/s; 3x that at 3,000 images/s (an estimate, not yet measured)")
    p.add_argument("--seeds", default="0,1,2", help="seeds (e.g. 0,1,2 or 0-4)")
    p.add_argument("--modes", default=",".join(TRANSFER_MODES), help="comma-separated modes")
    p.add_argument("--epochs", type=int, help=BUDGET_HELP)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores, shared out between --workers)")
    add_repeat_options(p, "points")
    add_output_options(p, out="folder for the runs and the table (default runs/transfer-curve-<target>)",
                       force="train every point again (default: reuse evaluated runs)")
