"""The ``mnistlab`` command line: parses arguments and calls the library; no logic of its own.

Exit codes: 0 success, 1 the work failed, 2 a user mistake (bad option, missing file, ...).
Results go to stdout (only JSON with ``--json``); progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold",
                         justify="left" if col in ("arch", "framework", "model", "file", "name", "path") else "right")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(file=sys.stdout, width=max(100, len(columns) * 14)).print(table)


# ----------------------------------------------------------------------------- data
def cmd_data(args: argparse.Namespace) -> int:
    from mnistlab.data import store

    names = store.list_dataset_names() if args.dataset == "all" else [args.dataset]
    results = {}
    for name in names:
        if args.action == "fetch":
            paths = store.fetch(name, data_dir=args.data_dir)
            results[name] = {k: str(v) for k, v in paths.items()}
        elif args.action == "verify":
            results[name] = store.verify(name, data_dir=args.data_dir)
        else:
            results[name] = store.info(name, data_dir=args.data_dir)
    if args.json:
        emit_json(results)
        return EXIT_OK
    for name, result in results.items():
        if args.action == "fetch":
            print(f"{name}: verified")
            for key, path in result.items():
                print(f"  {key:<13} {path}")
        elif args.action == "verify":
            print_table(f"{name}: verify", ["file", "ok", "bytes", "sha256", "path"],
                        [(r["name"], "yes" if r["ok"] else f"NO: {r.get('problem')}", r.get("bytes"),
                          (r.get("sha256") or "")[:16], r.get("path")) for r in result])
        else:
            print(json.dumps(result, indent=2))
    bad = [r for result in results.values() if args.action == "verify" for r in result if not r["ok"]]
    return EXIT_FAILED if bad else EXIT_OK


# ----------------------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    from mnistlab.models import REFERENCE_PARAMS, count_parameters, create_model, describe_models

    rows = [{"name": name, "params": count_parameters(create_model(name)), "description": desc,
             "reference_params": REFERENCE_PARAMS.get(name)} for name, desc in describe_models().items()]
    if args.json:
        emit_json(rows)
    else:
        print_table("models", ["name", "params", "description"],
                    [(r["name"], f"{r['params']:,}", r["description"]) for r in rows])
    return EXIT_OK


# ----------------------------------------------------------------------------- train
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "step_size",
               "gamma", "patience", "monitor", "seed", "augment", "degrees", "val_size", "split_seed",
               "train_subset", "threads", "dataset", "framework", "amp")


def add_train_options(p: argparse.ArgumentParser) -> None:
    from mnistlab.config import MONITORS, OPTIMIZERS, PRESETS, SCHEDULERS, field_help
    from mnistlab.models import list_models

    h = field_help()
    p.add_argument("--arch", choices=list_models(), help=h["arch"])
    p.add_argument("--preset", choices=list(PRESETS), default="default",
                   help="named recipe; 'seed' is the original project's (StepLR, patience 3)")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help=h["dataset"])
    p.add_argument("--epochs", type=int, help=h["epochs"])
    p.add_argument("--batch-size", type=int, help="default 128")
    p.add_argument("--lr", type=float, help=h["lr"])
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=h["optimizer"])
    p.add_argument("--weight-decay", type=float, help="default 1e-4 (seed preset: 1e-3)")
    p.add_argument("--scheduler", choices=SCHEDULERS, help=h["scheduler"])
    p.add_argument("--step-size", type=int, help="epochs between StepLR decays (default 7)")
    p.add_argument("--gamma", type=float, help="StepLR factor (default 0.1)")
    p.add_argument("--patience", type=int, help=h["patience"])
    p.add_argument("--monitor", choices=MONITORS, help=h["monitor"])
    p.add_argument("--seed", type=int, help=h["seed"])
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, help="random affine augmentation (default on)")
    p.add_argument("--degrees", type=float, help=h["degrees"])
    p.add_argument("--val-size", type=int, help=h["val_size"])
    p.add_argument("--split-seed", type=int, help=h["split_seed"])
    p.add_argument("--train-subset", type=int, help=h["train_subset"])
    p.add_argument("--threads", type=int, help=h["threads"])
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, help=h["amp"] + " (default off)")
    p.add_argument("--framework", choices=["torch", "keras"], help="torch (default) or keras (needs mnistlab[keras])")


def train_config_from_args(args: argparse.Namespace):
    from mnistlab.config import preset

    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k, None) is not None}
    return preset(args.preset, arch=args.arch, **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from mnistlab import runs
    from mnistlab.frameworks import train_function

    if args.resume:
        if args.seeds:
            raise UserError("--seeds trains new runs; it cannot be combined with --resume")
        out = Path(args.resume)
        train = train_function(runs.read_config(out).get("framework", "torch"))
        summary = train(None, out, data_dir=args.data_dir, resume=True, progress=not args.quiet)  # type: ignore[arg-type]
    else:
        if not args.arch:
            raise UserError("--arch is required (or --resume RUN_DIR); see 'mnistlab models'")
        cfg = train_config_from_args(args)
        if args.seeds:
            return train_several_seeds(args, cfg)
        out = Path(args.out) if args.out else runs.default_run_dir(cfg.arch)
        summary = train_function(cfg.framework)(cfg, out, data_dir=args.data_dir, force=args.force, progress=not args.quiet)
    summary = {"run_dir": str(out), **summary}
    if args.json:
        emit_json(summary)
    else:
        print(f"run: {out}")
        print(f"best epoch {summary['best_epoch']}/{summary['epochs_run']}: val acc {summary['best_val_acc']:.4f}, "
              f"val loss {summary['best_val_loss']:.4f}; {summary['train_seconds']:.0f}s, "
              f"{summary['samples_per_s']:,.0f} samples/s ({summary['stop_reason']})")
        print(f"next: mnistlab evaluate {out}")
    return EXIT_OK


def train_several_seeds(args: argparse.Namespace, cfg) -> int:
    from mnistlab import runs
    from mnistlab.training.multiseed import parse_seeds, train_seeds

    out = Path(args.out) if args.out else runs.default_run_dir(f"{cfg.arch}-seeds")
    results = train_seeds(cfg, out, parse_seeds(args.seeds), data_dir=args.data_dir, force=args.force,
                          progress=not args.quiet)
    if args.json:
        emit_json(results)
        return EXIT_OK
    print_table(f"{cfg.arch}: {len(results)} seeds", ["seed", "best epoch", "val acc", "train s", "path"],
                [(r["seed"], r["best_epoch"], f"{r['best_val_acc']:.4f}", f"{r['train_seconds']:.0f}", r["run_dir"])
                 for r in results])
    print(f"next: for r in {out}/seed*; do mnistlab evaluate $r; done; mnistlab compare {out}/seed*")
    return EXIT_OK


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from mnistlab.evaluation.evaluate import evaluate_run

    m = evaluate_run(args.run_dir, data_dir=args.data_dir)
    if args.json:
        emit_json(m)
        return EXIT_OK
    print(f"{args.run_dir}: test accuracy {m['accuracy']:.4f} ({m['n_errors']} errors in {m['n_samples']}), "
          f"macro F1 {m['macro_f1']:.4f}, NLL {m['nll']:.4f}, ECE {m['ece']:.4f}, "
          f"{m['high_confidence_errors']} errors above 0.9 confidence")
    print_table("per class", ["class", "precision", "recall", "f1", "support"],
                [(c["name"], f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", c["support"])
                 for c in m["per_class"]])
    names = [c["name"] for c in m["per_class"]]
    confusions = ", ".join(f"{names[c['true']]}→{names[c['predicted']]} ×{c['count']}" for c in m["top_confusions"][:5])
    print(f"most confused: {confusions or 'none'}")
    return EXIT_OK


# ----------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from mnistlab.predict import predict_files

    results = predict_files(args.run_dir, args.images)
    if args.json:
        emit_json(results)
    else:
        for r in results:
            print(f"{r['file']}: {r['label']} ({r['probability']:.1%})")
    return EXIT_OK


# ----------------------------------------------------------------------------- quickstart
def cmd_quickstart(args: argparse.Namespace) -> int:
    from mnistlab.quickstart import default_out, quickstart

    out = Path(args.out) if args.out else default_out()
    result = quickstart(out, smoke=args.smoke, data_dir=args.data_dir, seed=args.seed, force=args.force,
                        progress=not args.quiet, models=tuple(args.models.split(",")))
    if args.json:
        emit_json(result)
        return EXIT_OK
    rows = result["models"]
    print_table(f"quickstart{' (smoke)' if args.smoke else ''}: MNIST test set, seed {args.seed}",
                ["arch", "framework", "test acc", "val acc", "params", "epochs", "train s", "samples/s",
                 "size KB", "ECE"],
                [(r["arch"], r["framework"], f"{r['test_accuracy']:.4f}", f"{r['val_accuracy']:.4f}",
                  f"{r['params']:,}", r["epochs"] or "—", f"{r['train_seconds']:.0f}",
                  f"{r['samples_per_s']:,.0f}" if r["samples_per_s"] else "—",
                  f"{r['model_bytes'] / 1024:.0f}", f"{r['ece']:.4f}") for r in rows])
    print(f"runs in {out}; total {result['total_seconds']:.0f}s")
    print(f"report: {result['report']}")
    return EXIT_OK


# ----------------------------------------------------------------------------- parser
# Modules that add their own subcommands: each defines ``add_commands(command)`` where
# ``command(name, func, help, json_flag=True, data_dir=True)`` returns a new subparser.
COMMAND_MODULES = (
    "mnistlab.commands.analysis",
    "mnistlab.commands.explain",
    "mnistlab.commands.deploy",
    "mnistlab.commands.frameworks",
    "mnistlab.commands.serve",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from mnistlab import __version__
    from mnistlab.quickstart import MODELS as QUICKSTART_MODELS

    parser = argparse.ArgumentParser(
        prog="mnistlab", description="Train, compare, explain, export and serve digit classifiers on MNIST.")
    parser.add_argument("--version", action="version", version=f"mnistlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, *, json_flag=True,
                data_dir=True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print only JSON on stdout")
        if data_dir:
            p.add_argument("--data-dir", help="folder with the IDX files (default: $MNISTLAB_DATA_DIR, then the cache)")
        return p

    p = command("data", cmd_data, "fetch, verify or describe the data sets")
    p.add_argument("action", choices=["fetch", "verify", "info"])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "all"])

    command("models", cmd_models, "list the registered architectures", data_dir=False)

    p = command("train", cmd_train, "train one model into a run directory")
    add_train_options(p)
    p.add_argument("--out", help="run directory (default runs/<arch>-<time>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run at --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run that was stopped")
    p.add_argument("--seeds", metavar="LIST", help="train one run per seed (e.g. 0,1,2 or 0-4) into --out/seed<k>")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = command("evaluate", cmd_evaluate, "evaluate a run on the test split once; write metrics.json")
    p.add_argument("run_dir")

    p = command("predict", cmd_predict, "classify PNG/JPEG images with a trained run", data_dir=False)
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", metavar="IMAGE")

    p = command("quickstart", cmd_quickstart, "fetch data, train the three architectures, evaluate, compare")
    p.add_argument("--smoke", action="store_true", help="tiny budget (seconds): checks that everything runs")
    p.add_argument("--models", default=",".join(QUICKSTART_MODELS),
                   help="comma-separated models, 'keras:' for the Keras twin (default: %(default)s)")
    p.add_argument("--out", help="folder for the runs (default runs/quickstart-<time>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite existing runs at --out")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"mnistlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the work failed: say so in one line; MNISTLAB_DEBUG=1 shows the traceback
        from mnistlab.training.trainer import TrainingFailed

        if os.environ.get("MNISTLAB_DEBUG") or not isinstance(exc, TrainingFailed):
            raise
        print(f"mnistlab {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
