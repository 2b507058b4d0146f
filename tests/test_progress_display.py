"""Progress where people wait: a live display on stderr only when it is a terminal, and the
final epoch line whole on a narrow one."""

from __future__ import annotations

import io
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from mnistlab import cli
from mnistlab.training.progress import EpochProgress

SRC = str(Path(__file__).parents[1] / "src")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "TERM")}
    return {**env, "TERM": "xterm", "COLUMNS": "100", "PYTHONPATH": os.pathsep.join([SRC, env.get("PYTHONPATH", "")])}


def _stderr_on_a_pty(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal (stdout to a pipe); its exit code and what stderr showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=_env())
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    proc.stdout.read()
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


# A second of work counted by the display every command uses (evaluate, MC dropout, export, bench).
_WORK = """
import time
from mnistlab.training.progress import WorkProgress
with WorkProgress("counting", total=5, unit="steps") as work:
    for _ in range(5):
        time.sleep(0.2)
        work.advance(1)
print("done")
"""


def test_work_progress_is_live_on_a_terminal_only():
    code, shown = _stderr_on_a_pty([sys.executable, "-c", _WORK])
    assert code == 0 and "counting" in ANSI.sub("", shown) and "steps" in shown
    piped = subprocess.run([sys.executable, "-c", _WORK], capture_output=True, text=True, env=_env(), check=True)
    assert piped.stdout == "done\n" and piped.stderr == ""


@pytest.mark.slow  # two evaluations of the test split (~15 s)
def test_evaluate_shows_progress_on_a_terminal_and_nothing_live_otherwise(trained_run, tmp_path, data_dir, capsys):
    run = tmp_path / "simple"
    shutil.copytree(trained_run, run)
    assert cli.main(["evaluate", str(run), "--data-dir", str(data_dir)]) == 0
    assert "evaluate simple" not in capsys.readouterr().err  # stderr is not a terminal here

    code, shown = _stderr_on_a_pty([sys.executable, "-m", "mnistlab", "evaluate", str(run), "--data-dir", str(data_dir)])
    assert code == 0
    assert "evaluate simple" in ANSI.sub("", shown) and "images" in shown


def test_the_final_epoch_line_is_whole_on_a_narrow_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=40)
    row = {"epoch": 3, "train_loss": 0.1234, "train_acc": 0.9612, "val_loss": 0.0876, "val_acc": 0.9731,
           "lr": 1e-3, "seconds": 12.3, "samples_per_s": 4567}
    with EpochProgress("simple", console=console) as bar:
        bar.start_epoch(3, 3, total=10)
        bar.advance(10, 0.12, 0.96, 4000)
        bar.end_epoch(row)
    text = re.sub(r"\s", "", ANSI.sub("", out.getvalue()))  # wrapped at spaces: compare without them
    line = "simple epoch 3: train loss 0.1234 acc 0.9612 | val loss 0.0876 acc 0.9731 | lr 1.00e-03 | 12.3s 4,567/s"
    assert re.sub(r"\s", "", line) in text
