"""`mnistlab train`: one run, several seeds, or a resumed run; optionally on N processes.

    mnistlab train --arch simple --epochs 3 --out runs/simple
    mnistlab train --resume runs/simple
    mnistlab train --arch simple --seeds 0-4 --out runs/simple-seeds

The training options are generated from the :class:`~mnistlab.config.TrainConfig` fields: name,
type, default and help are written once, in config.py. Choices come from the registries (models,
data sets, frameworks) and from config's tuples (optimisers, schedulers, monitors, devices).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Sequence

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table
from mnistlab.commands.repeats import add_repeat_options
from mnistlab.errors import UserError

# Options that name one run; `ensemble-train` sets them per member (--archs, --seeds, keras: prefix).
PER_RUN_OPTIONS = ("arch", "seed", "framework", "nproc")
# `train` needs to know what to train; argparse cannot say "one of these, or a preset that names an
# arch", so the usage line and the first group of --help say it.
TRAIN_USAGE = "%(prog)s (--arch NAME | --preset {presets} | --resume RUN_DIR) [options]"


def cli_fields() -> list[dataclasses.Field]:
    """The :class:`~mnistlab.config.TrainConfig` fields that are options of ``train`` and ``ensemble-train``."""
    from mnistlab.config import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def show(value: Any) -> str:
    """A default as --help shows it: on/off, 0.003, none."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def default_text(f: dataclasses.Field) -> str:
    """``(default: X; --preset seed: Y; --dataset fashion-mnist: Z)``: the field's default, then
    every preset and data set that changes it, so --help tells what a run without the flag gets."""
    from mnistlab.config import PRESETS
    from mnistlab.data.registry import DATASETS

    def changes(owners: dict[str, dict[str, Any]]) -> str:
        return ", ".join(f"{owner}: {show(v[f.name])}" for owner, v in owners.items()
                         if f.name in v and v[f.name] != f.default)

    first = ("required unless --resume" if f.name == "arch"  # the one field the CLI does not default
             else f"default: {f.metadata.get('shown') or show(f.default)}")
    by_preset = changes(PRESETS)
    by_dataset = changes({name: dict(info.train_defaults) for name, info in DATASETS.items()})
    return "(" + "; ".join([first] + [f"--preset {by_preset}"] * bool(by_preset)
                           + [f"--dataset {by_dataset}"] * bool(by_dataset)) + ")"


def option_keywords(f: dataclasses.Field, kind: type, choices: list[str]) -> dict[str, Any]:
    """``add_argument``'s keywords for one field: ``--x/--no-x`` for a bool, one of ``choices`` where
    there are some, else a typed value; always no default, so that only a flag given counts."""
    kw: dict[str, Any] = {"help": f"{f.metadata['help']} {default_text(f)}".replace("%", "%%")}
    if kind is bool:
        return {**kw, "action": argparse.BooleanOptionalAction}
    if f.metadata.get("bare"):  # once a switch: --amp alone is still --amp on
        return {**kw, "choices": choices, "nargs": "?", "const": f.metadata["bare"][0]}
    if choices:
        return {**kw, "choices": choices}
    return {**kw, "type": kind, "metavar": "N" if kind is int else "X"}


def add_train_options(p: argparse.ArgumentParser, skip: Sequence[str] = (),
                      head: argparse._ActionsContainer | None = None) -> None:
    """The training options of every command that trains (``train``, ``ensemble-train``), less ``skip``.

    One option per :func:`cli_fields` field (:func:`option_keywords`); ``--arch`` and ``--preset``
    go into ``head`` (default ``p``), the rest into a group of their own.
    """
    from mnistlab.config import PRESETS, TrainConfig
    from mnistlab.frameworks import FRAMEWORKS
    from mnistlab.models import list_models

    # No choices for --dataset: a data set added to the store (--data-dir) is known only once parsed.
    registry_choices = {"arch": list_models(), "dataset": None, "framework": list(FRAMEWORKS)}
    hints = typing.get_type_hints(TrainConfig)
    head = head or p
    settings = p.add_argument_group("training settings", "a flag overrides the --preset's value and the data "
                                    "set's own default; without it, the run gets the value in brackets")
    for f in cli_fields():
        if f.name in skip:
            continue
        # int | None → int
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        choices = registry_choices.get(f.name) or list(f.metadata["choices"])
        (head if f.name == "arch" else settings).add_argument("--" + f.name.replace("_", "-"),
                                                              **option_keywords(f, kind, choices))
        if f.metadata.get("bare"):  # and --no-amp of older scripts is --amp off
            settings.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_const",
                                  const=f.metadata["bare"][1], help=argparse.SUPPRESS)
    head.add_argument("--preset", choices=list(PRESETS), default="default",
                      help="named recipe; 'seed' is the original project's (StepLR, patience 3); "
                           "'speedrun' reaches 99%% test accuracy fastest on a CPU (docs/speed.md); 'best' the "
                           "highest-accuracy one (deeper, 36 epochs; docs/quickstart.md) (default: 'default', "
                           "the values in brackets)")
    head.add_argument("--preset-file", metavar="FILE",
                      help="a TOML file of settings by these options' names (underscores), optionally with "
                           "preset = NAME; on top of --preset, under the flags (mnistlab sweep --export-preset "
                           "writes one)")
    if "nproc" not in skip:
        settings.add_argument("--nproc", type=int, metavar="N",
                              help="train on N processes on this machine (launches torchrun)")


def preset_and_settings(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(the preset, the settings) the options ask for: ``--preset-file``'s values under the flags given.

    The file's own ``preset = NAME`` applies when ``--preset`` is not given.
    """
    from mnistlab.config import read_preset_file

    name, settings = read_preset_file(args.preset_file) if getattr(args, "preset_file", None) else (None, {})
    flags = {f.name: getattr(args, f.name) for f in cli_fields() if getattr(args, f.name, None) is not None}
    return (args.preset if args.preset != "default" or name is None else name), {**settings, **flags}


def train_config_from_args(args: argparse.Namespace):
    from mnistlab.config import preset

    name, settings = preset_and_settings(args)
    return preset(name, **settings)


def cmd_train(args: argparse.Namespace) -> int:
    """``mnistlab train``: :func:`mnistlab.train` with the options as its arguments."""
    from mnistlab.api import prepare_torchrun, train
    from mnistlab.training.distributed import is_main_process, launch_torchrun

    preset, settings = preset_and_settings(args)
    arch = settings.pop("arch", None)
    if args.track:  # a mistake in --track or a missing MLflow shows now, not after the training
        from mnistlab.tracking import Tracker

        Tracker.parse(args.track, beside=".").require()
    if args.nproc is not None:
        # The checks rank 0 would make, once, in one line; then this very command line on N processes,
        # whose rank 0 prints the summary (--json too).
        out, _ = prepare_torchrun(arch, preset=preset, out=args.resume or args.out,
                                  resume=bool(args.resume), seeds=args.seeds, force=args.force, **settings)
        argv = args.argv if args.out or args.resume else [*args.argv, "--out", str(out)]
        return launch_torchrun(args.nproc, argv)
    repeats: dict[str, Any] = {}
    if args.seeds is not None and not args.resume:  # the seeds run through the sweep engine: the same command continues them
        from mnistlab import runs
        from mnistlab.commands.repeats import repeat_options, resume_line

        out = args.out or runs.default_run_dir(f"{train_config_from_args(args).arch}-seeds")
        repeats = {"out": out, "repeat": repeat_options(args), "resume_command": resume_line(args, out)}
    elif args.workers != 1 or args.storage or args.join:
        raise UserError("--workers, --storage and --join run several --seeds at once; give --seeds "
                        "(or --nproc to train one run on several processes)")
    result = train(arch, preset=preset, **{"out": args.resume or args.out, **repeats}, resume=bool(args.resume),
                   seeds=args.seeds, data_dir=args.data_dir, force=args.force, progress=not args.quiet, **settings)
    if not is_main_process():
        return EXIT_OK
    tracked = track_runs(args.track, [r.path for r in (result if isinstance(result, list) else [result])],
                         data_dir=args.data_dir)
    if isinstance(result, list):
        print_seeds(args, result, tracked)
    else:
        print_summary(args, result.path, result.training, tracked)
    return EXIT_OK


def track_runs(track: str | None, paths: list[Path], *, data_dir: str | None = None) -> dict[Path, str]:
    """``--track``: each finished run logged to MLflow with its model; run folder → MLflow run id."""
    if not track:
        return {}
    from mnistlab.tracking import Tracker

    tracker = Tracker.parse(track, beside=paths[0].parent)
    return {p: tracker.log_run(p, experiment="mnistlab", data_dir=data_dir) for p in paths}


def print_summary(args: argparse.Namespace, out: Path, summary: dict[str, Any],
                  tracked: dict[Path, str] | None = None) -> None:
    summary = {"run_dir": str(out), **summary, **({"mlflow_run_id": tracked[out]} if tracked else {})}
    if args.json:
        emit_json(summary)
        return
    print(f"run: {out}")
    print(f"best epoch {summary['best_epoch']}/{summary['epochs_run']}: val acc {summary['best_val_acc']:.4f}, "
          f"val loss {summary['best_val_loss']:.4f}; {summary['train_seconds']:.0f}s, "
          f"{summary['samples_per_s']:,.0f} samples/s ({summary['stop_reason']})")
    if "precision" in summary:
        print(f"precision: {summary['precision']} ({summary['precision_reason']})")
    if tracked:
        print(f"mlflow: run {tracked[out]} (experiment mnistlab)")
    print(f"next: mnistlab evaluate {out}")


def print_seeds(args: argparse.Namespace, results: list, tracked: dict[Path, str] | None = None) -> None:
    rows = [{"run_dir": str(r.path), "seed": r.config.seed, **r.training,
             **({"mlflow_run_id": tracked[r.path]} if tracked else {})} for r in results]
    if args.json:
        emit_json(rows)
        return
    out = results[0].path.parent
    print_table(f"{results[0].config.arch}: {len(rows)} seeds", ["seed", "best epoch", "val acc", "train s", "path"],
                [(r["seed"], r["best_epoch"], f"{r['best_val_acc']:.4f}", f"{r['train_seconds']:.0f}", r["run_dir"])
                 for r in rows])
    print(f"next: for r in {out}/seed*; do mnistlab evaluate $r; done; mnistlab compare {out}/seed*")


def add_commands(command) -> None:
    """Add ``train`` through ``command(name, func, help, ...)``."""
    from mnistlab.config import PRESETS

    p = command("train", cmd_train, "train one model into a run directory")
    naming = "|".join(name for name, values in PRESETS.items() if "arch" in values)
    p.usage = TRAIN_USAGE.format(presets=naming)
    what = p.add_argument_group("what to train (one is required)")
    add_train_options(p, head=what)
    what.add_argument("--resume", metavar="RUN_DIR", help="continue a run that was stopped")
    p.add_argument("--seeds", metavar="LIST", help="train one run per seed (e.g. 0,1,2 or 0-4) into --out/seed<k>; "
                   "the same command again keeps finished seeds and resumes an interrupted one")
    add_repeat_options(p, "seeds")
    p.add_argument("--track", metavar="mlflow[:URI]",
                   help="log the finished run to MLflow (mnistlab[track]): settings, each epoch's numbers, its "
                        "files, its model as ONNX (with mnistlab[deploy]); default store: sqlite mlflow.db beside "
                        "the run folder")
    add_output_options(p, out="run directory (default runs/<arch>-<time>)", force="overwrite an existing run at --out")
