"""The options of the commands whose runs are a fixed list (``train --seeds``, ``ensemble-train``,
``transfer-curve``): how many workers, where their study lives, joining one from another machine.

    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_repeat_options(p, "seeds")
    >>> repeat_options(p.parse_args(["--workers", "2"])).workers
    2
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any


def add_repeat_options(p: argparse.ArgumentParser, what: str) -> None:
    """``--workers``, ``--storage`` and ``--join`` (:class:`~mnistlab.sweep.repeats.RepeatOptions`); ``what``
    names the runs in the help (seeds, members, points)."""
    group = p.add_argument_group(
        "workers",
        f"the {what} are a fixed grid on the sweep engine (docs/sweep.md); running the same command again continues it",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="train K runs at once, each in its own process; on a CPU they share the cores "
        "(--threads each if given), on CUDA they share the GPU (default 1: one after another "
        "in this process; above 1 needs mnistlab[sweep])",
    )
    group.add_argument(
        "--storage",
        metavar="URL",
        help="the Optuna study holding which runs are left: an SQLAlchemy URL "
        "(postgresql+psycopg2://user@host/db shares it between machines) or journal:PATH "
        "(default with --workers above 1: sqlite repeats.db in --out)",
    )
    group.add_argument(
        "--join",
        action="store_true",
        help="add this machine's workers to the study the same command started elsewhere in "
        "--storage (the same --out, on a shared folder, collects the results)",
    )


def repeat_options(args: argparse.Namespace, **extra: Any):
    """The :class:`~mnistlab.sweep.repeats.RepeatOptions` the options ask for."""
    from mnistlab.sweep.repeats import RepeatOptions

    return RepeatOptions(workers=args.workers, storage=args.storage, join=args.join, **extra)


def resume_line(args: argparse.Namespace, out: str | None = None) -> str:
    """The command that continues: this one without ``--force`` (finished runs are kept), with ``--out``."""
    argv = [a for a in getattr(args, "argv", []) if a != "--force"]
    if out is not None and not args.out:
        argv += ["--out", str(out)]
    return "mnistlab " + shlex.join(argv)
