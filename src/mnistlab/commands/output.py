"""What every subcommand shares: exit codes, JSON and tables on stdout, the output options.

    >>> from mnistlab.commands.output import EXIT_OK, emit_json
    >>> emit_json({"accuracy": 0.99})
    {
      "accuracy": 0.99
    }

Results go to stdout (only JSON with ``--json``); progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # success; the work failed; a user mistake
# Interrupted: 128 + the signal's number, as a shell reports it (130 Ctrl-C, 143 SIGTERM); see cli.interrupted.
# Columns holding text (left-aligned); every other column holds a number (right-aligned).
TEXT_COLUMNS = ("arch", "framework", "model", "file", "name", "path", "description")


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold", justify="left" if col in TEXT_COLUMNS else "right")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(file=sys.stdout, width=max(100, len(columns) * 14)).print(table)



def add_output_options(p: argparse.ArgumentParser, *, out: str, force: str | None = None, quiet: bool = True) -> None:
    """``--out``, ``--force`` and ``--quiet``, the same for every command that writes a run or a results folder.

    ``out`` says where the command writes without ``--out``; ``force`` what overwriting means for
    it (None: nothing to overwrite, no ``--force``); ``quiet=False``: the command shows no progress.
    """
    group = p.add_argument_group("output")
    group.add_argument("--out", metavar="DIR", help=out)
    if force is not None:
        group.add_argument("--force", action="store_true", help=force)
    if quiet:
        group.add_argument("--quiet", action="store_true", help="no progress on stderr")
