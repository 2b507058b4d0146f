"""`mnistlab train`: one run, several seeds, or a resumed run; optionally on N processes.

    mnistlab train --arch simple --epochs 3 --out runs/simple
    mnistlab train --resume runs/simple
    mnistlab train --arch simple --seeds 0-4 --out runs/simple-seeds

The options are the :class:`~mnistlab.config.TrainConfig` fields (their help is the fields' own);
choices come from the registries (models, data sets, frameworks, optimisers, schedulers).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from mnistlab.commands.output import EXIT_OK, emit_json, print_table
from mnistlab.errors import UserError

# Options copied onto TrainConfig fields of the same name (when the config has that field).
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "scheduler", "step_size",
               "gamma", "beta1", "beta2", "label_smoothing", "patience", "monitor", "seed", "augment", "degrees",
               "val_size", "split_seed", "train_subset", "threads", "dataset", "framework", "amp", "device", "tensorboard",
               "erasing", "ema_decay", "translate", "scale", "hflip", "cuda_graph", "fused_optimizer")
DEVICES = ("auto", "cpu", "cuda")


# Options that name one run; `ensemble-train` sets them per member (--archs, --seeds, keras: prefix).
PER_RUN_OPTIONS = ("arch", "seed", "framework", "nproc")


def add_train_options(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """The training options of every command that trains (``train``, ``ensemble-train``), less ``skip``.

    An option's help is its TrainConfig field's own (:func:`mnistlab.config.field_help`) unless given here.
    """
    from mnistlab.config import MONITORS, OPTIMIZERS, PRESETS, SCHEDULERS, TrainConfig, field_help
    from mnistlab.data.datasets import list_datasets
    from mnistlab.frameworks import FRAMEWORKS
    from mnistlab.models import list_models

    h = field_help()
    default = TrainConfig()

    def add(name: str, **kw: Any) -> None:
        if name not in skip:
            kw.setdefault("help", h.get(name))
            p.add_argument("--" + name.replace("_", "-"), **kw)

    add("arch", choices=list_models())
    add("preset", choices=list(PRESETS), default="default",
        help="named recipe; 'seed' is the original project's (StepLR, patience 3); "
             "'speedrun' reaches 99%% test accuracy fastest on a CPU (docs/speed.md); 'best' the "
             "highest-accuracy one (deeper, 36 epochs; docs/quickstart.md)")
    add("dataset", choices=list_datasets())
    add("epochs", type=int)
    add("batch_size", type=int, help=f"{h['batch_size']} (default {default.batch_size})")
    add("lr", type=float)
    add("optimizer", choices=OPTIMIZERS)
    add("beta1", type=float)
    add("beta2", type=float)
    add("label_smoothing", type=float)
    add("weight_decay", type=float,
        help=f"default {default.weight_decay:g} (seed preset: {PRESETS['seed']['weight_decay']:g})")
    add("scheduler", choices=SCHEDULERS)
    add("step_size", type=int, help=f"epochs between StepLR decays (default {default.step_size})")
    add("gamma", type=float, help=f"StepLR factor (default {default.gamma:g})")
    add("patience", type=int)
    add("monitor", choices=MONITORS)
    add("seed", type=int)
    add("augment", action=argparse.BooleanOptionalAction, help="random affine augmentation (default on)")
    for name in ("degrees", "translate", "scale", "hflip", "erasing", "ema_decay"):
        add(name, type=float)
    for name in ("val_size", "split_seed", "train_subset", "threads"):
        add(name, type=int)
    add("amp", action=argparse.BooleanOptionalAction, help=h["amp"] + " (default off)")
    add("framework", choices=FRAMEWORKS,
        help=f"{' or '.join(FRAMEWORKS)} (default {default.framework}; keras needs mnistlab[keras])")
    add("device", choices=DEVICES)
    add("fused_optimizer", action=argparse.BooleanOptionalAction,
        help=h["fused_optimizer"] + " (default off; on in the speedrun preset)")
    add("cuda_graph", action=argparse.BooleanOptionalAction,
        help=h["cuda_graph"] + " (default off; on in the speedrun preset)")
    add("tensorboard", action="store_true", default=None)
    add("nproc", type=int, metavar="N", help="train on N processes on this machine (launches torchrun)")


def train_config_from_args(args: argparse.Namespace):
    from mnistlab.config import preset

    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS + ("arch",) if getattr(args, k, None) is not None}
    return preset(args.preset, **overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from mnistlab import frameworks, runs
    from mnistlab.config import PRESETS
    from mnistlab.training.distributed import is_main_process, launch_torchrun
    from mnistlab.training.fit import check_before_launch

    if args.nproc is not None and args.seeds:
        raise UserError("--nproc trains one run; it cannot be combined with --seeds")
    if args.resume:
        if args.seeds:
            raise UserError("--seeds trains new runs; it cannot be combined with --resume")
        out = Path(args.resume)
        if args.nproc is not None:  # the checks rank 0 would make, once, as one-line errors
            check_before_launch(None, out, resume=True)
            return launch_torchrun(args.nproc, args.argv)
        train = frameworks.get(runs.read_config(out).framework).train
        summary = train(None, out, data_dir=args.data_dir, resume=True, progress=not args.quiet)  # type: ignore[arg-type]
    else:
        if not args.arch and "arch" not in PRESETS[args.preset]:
            raise UserError("--arch is required (or --resume RUN_DIR, or a --preset that names one); see 'mnistlab models'")
        cfg = train_config_from_args(args)
        if args.seeds:
            return train_several_seeds(args, cfg)
        out = Path(args.out) if args.out else runs.default_run_dir(cfg.arch)
        if args.nproc is not None:  # the checks rank 0 would make, once, as one-line errors
            check_before_launch(cfg, out, force=args.force)
            return launch_torchrun(args.nproc, args.argv if args.out else [*args.argv, "--out", str(out)])
        summary = frameworks.get(cfg.framework).train(cfg, out, data_dir=args.data_dir, force=args.force,
                                                progress=not args.quiet)
    if is_main_process():
        print_summary(args, out, summary)
    return EXIT_OK


def print_summary(args: argparse.Namespace, out: Path, summary: dict[str, Any]) -> None:
    summary = {"run_dir": str(out), **summary}
    if args.json:
        emit_json(summary)
        return
    print(f"run: {out}")
    print(f"best epoch {summary['best_epoch']}/{summary['epochs_run']}: val acc {summary['best_val_acc']:.4f}, "
          f"val loss {summary['best_val_loss']:.4f}; {summary['train_seconds']:.0f}s, "
          f"{summary['samples_per_s']:,.0f} samples/s ({summary['stop_reason']})")
    print(f"next: mnistlab evaluate {out}")


def train_several_seeds(args: argparse.Namespace, cfg) -> int:
    from mnistlab import runs
    from mnistlab.experiments.multiseed import parse_seeds, train_seeds

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


def add_commands(command) -> None:
    """Add ``train`` through ``command(name, func, help, ...)``."""
    p = command("train", cmd_train, "train one model into a run directory")
    add_train_options(p)
    p.add_argument("--out", help="run directory (default runs/<arch>-<time>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run at --out")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run that was stopped")
    p.add_argument("--seeds", metavar="LIST", help="train one run per seed (e.g. 0,1,2 or 0-4) into --out/seed<k>")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
