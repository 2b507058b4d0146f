"""The ``mnistlab`` command line: builds the parser from ``commands/`` and dispatches; no logic of its own.

    mnistlab --help
    mnistlab train --arch simple --epochs 3 --out runs/simple

Exit codes (:mod:`mnistlab.commands.output`): 0 success, 1 the work failed (a file could not be
written included), 2 a user mistake (bad option, missing file, a run another process is
writing, ...), 130 interrupted by Ctrl-C, 143 stopped by SIGTERM; each with one line on stderr.
Results go to stdout (only JSON with ``--json``); progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Callable, Sequence

from mnistlab.commands.output import EXIT_FAILED, EXIT_USAGE
from mnistlab.errors import UserError, WriteFailed

# Each module defines ``add_commands(command)``, where ``command(name, func, help, json_flag=True,
# data_dir=True)`` returns a new subparser; the order here is the order of ``--help``.
COMMAND_MODULES = (
    "mnistlab.commands.data",
    "mnistlab.commands.train",
    "mnistlab.commands.evaluate",
    "mnistlab.commands.quickstart",
    "mnistlab.commands.analysis",
    "mnistlab.commands.explain",
    "mnistlab.commands.deploy",
    "mnistlab.commands.frameworks",
    "mnistlab.commands.ensemble",
    "mnistlab.commands.serve",
    "mnistlab.commands.transfer",
    "mnistlab.commands.sweep",
)


def build_parser() -> argparse.ArgumentParser:
    from mnistlab.version import __version__

    parser = argparse.ArgumentParser(
        prog="mnistlab", description="Train, compare, explain, export and serve image classifiers on MNIST, "
                    "Fashion-MNIST and your own image sets (mnistlab data add).")
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

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 1:  # a process torchrun started for `--nproc` gets its line this way
        from mnistlab.training.distributed import torchrun_argv

        argv = torchrun_argv()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # for commands that relaunch themselves (train --nproc)
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit (ulimit -f), a write fails with EFBIG, not a core dump
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # A data set is looked up by name in many places (registry.get); --data-dir names the store for
    # all of them, and for the processes a command starts, for as long as the command runs.
    previous = os.environ.get("MNISTLAB_DATA_DIR")
    if getattr(args, "data_dir", None):
        os.environ["MNISTLAB_DATA_DIR"] = args.data_dir
    try:
        return args.func(args)
    except UserError as exc:
        print(f"mnistlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or errors.Interrupted (SIGINT or SIGTERM during a long command)
        return interrupted(args.command, exc)
    except Exception as exc:  # the work failed: say so in one line; MNISTLAB_DEBUG=1 shows the traceback
        from mnistlab.sweep.study import SweepFailed
        from mnistlab.training.trainer import TrainingFailed

        if os.environ.get("MNISTLAB_DEBUG") or not isinstance(exc, (TrainingFailed, SweepFailed, WriteFailed)):
            raise
        print(f"mnistlab {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if getattr(args, "data_dir", None):
            if previous is None:
                os.environ.pop("MNISTLAB_DATA_DIR", None)
            else:
                os.environ["MNISTLAB_DATA_DIR"] = previous


def interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """Say in one line what stopped the command and what resumes it; the exit code 128 + the signal."""
    signum = getattr(exc, "signum", signal.SIGINT)
    resume = getattr(exc, "resume", None)
    name = signal.Signals(signum).name
    print(f"mnistlab {command}: interrupted ({name})"
          + (f"; resume with: {resume}" if resume else ""), file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
