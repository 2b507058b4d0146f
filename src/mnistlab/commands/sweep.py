"""`mnistlab sweep`: a hyper-parameter search on Optuna, each trial an ordinary run (docs/sweep.md).

    mnistlab sweep space.toml --trials 20 --workers 2 --out sweeps/simple
    mnistlab sweep space.toml --trials 20 --out sweeps/simple        # again: continues the study
    mnistlab sweep space.toml --join --study simple --storage postgresql+psycopg2://me@db/optuna --trials 20
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from mnistlab.commands.output import EXIT_OK, add_output_options, emit_json, print_table
from mnistlab.errors import UserError


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("mnistlab sweep needs Optuna: pip install 'mnistlab[sweep]'") from None
    from mnistlab.sweep.runner import run_sweep, worker_threads
    from mnistlab.sweep.space import read_space
    from mnistlab.sweep.study import SweepSettings

    space = read_space(args.space)
    out = Path(args.out or Path("sweeps") / Path(args.space).stem)
    if args.join and not args.storage:
        raise UserError("--join adds workers to a study in a shared --storage URL; name it (and --study)")
    track = None
    if args.track:  # a mistake here shows before any trial runs
        from mnistlab.tracking import Tracker

        tracker = Tracker.parse(args.track, beside=out)
        tracker.require()
        track = tracker.uri
    settings = SweepSettings(out=str(out), study=args.study or Path(args.space).stem, trials=args.trials,
                             workers=args.workers, storage=args.storage, sampler=args.sampler, pruner=args.pruner,
                             seed=args.seed, heartbeat=args.heartbeat, threads=worker_threads(args.workers),
                             data_dir=args.data_dir, quiet=args.quiet, track=track)
    argv = getattr(args, "argv", None)
    resume = "mnistlab " + shlex.join(argv) if argv else None
    result = run_sweep(space, settings, join=args.join, resume_command=resume)
    if args.export_preset:
        if result.best is None:
            raise UserError("--export-preset: no trial finished; nothing to export")
        from mnistlab.sweep.preset import write_preset

        write_preset(args.export_preset, space, result)
    if args.json:
        emit_json(result.to_dict())
        return EXIT_OK
    names = [p.name for p in space.params]
    print_table(f"sweep {result.study}: {len(result.trials)} trials", ["trial", "state", "val acc", *names, "seconds"],
                [(r.number, r.state, "" if r.value is None else f"{r.value:.4f}",
                  *(shown(r.params.get(n, "")) for n in names), "" if r.seconds is None else f"{r.seconds:.0f}")
                 for r in result.trials])
    if result.best is None:
        print(f"no trial finished; see {out / 'summary.md'}")
        return EXIT_OK
    b = result.best
    settings_text = ", ".join(f"{k}={shown(v)}" for k, v in b.params.items())
    print(f"best: trial {b.number}, val acc {b.value:.4f}: {settings_text}")
    print(f"run: {b.run_dir}")
    print(f"summary: {out / 'summary.md'}" + (f"; preset: {args.export_preset}" if args.export_preset else ""))
    print(f"next: mnistlab evaluate {b.run_dir}")
    return EXIT_OK


def shown(value: object) -> str:
    """A parameter as the table shows it: four significant digits for a float (the summary files keep all).

    >>> shown(0.003538453590906551), shown(32), shown("adamw")
    ('0.003538', '32', 'adamw')
    """
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def add_commands(command) -> None:
    """Add ``sweep`` through ``command(name, func, help, ...)``."""
    from mnistlab.sweep.study import PRUNERS, SAMPLERS

    p = command("sweep", cmd_sweep, "search training settings with Optuna; each trial is a run (docs/sweep.md)")
    p.add_argument("space", metavar="SPACE.toml", help="sweep file: [base] fixed settings, [search] searched ones")
    p.add_argument("--trials", type=int, metavar="N",
                   help="finished trials wanted in the study (default with --sampler grid: every grid point)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="worker processes on this machine, each running trials one after another; on a CPU "
                        "they share the cores (default 1)")
    p.add_argument("--storage", metavar="URL",
                   help="where the study lives: an SQLAlchemy URL (postgresql+psycopg2://user@host/db shares it "
                        "between machines) or journal:PATH (default: sqlite in the sweep folder)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the sweep file's name)")
    p.add_argument("--join", action="store_true",
                   help="add this machine's workers to a study already started in --storage")
    p.add_argument("--sampler", choices=list(SAMPLERS), default="tpe",
                   help="tpe (default), random, or grid (every combination of the lists and stepped ranges)")
    p.add_argument("--pruner", choices=list(PRUNERS), default="median",
                   help="stop a trial after an epoch whose validation accuracy is below the other trials' "
                        "median (default), by Hyperband, or never")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (worker k uses seed + k) (default 0)")
    p.add_argument("--heartbeat", type=int, default=60, metavar="S",
                   help="seconds between a running trial's heartbeats in an SQL storage; a trial silent for "
                        "twice this is marked failed and run again (default 60)")
    p.add_argument("--track", metavar="mlflow[:URI]",
                   help="log each finished trial's run to MLflow (mnistlab[track]), experiment = the study, the "
                        "best trial's with its model as ONNX; default store: sqlite mlflow.db in the sweep folder")
    p.add_argument("--export-preset", metavar="FILE",
                   help="write the best trial's settings as a preset file for 'mnistlab train --preset-file'")
    add_output_options(p, out="sweep folder (default sweeps/<sweep file name>); the same command again continues it")
