"""Repeats run for real on worker processes: seeds on two workers as on one, an ensemble stopped by
SIGTERM and continued by the same command, a transfer curve on two workers reused when run again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("optuna", reason="needs mnistlab[sweep]")

from mnistlab import runs
from mnistlab.cli import main

pytestmark = pytest.mark.slow

# One epoch on 300 images, one thread per run: the same seed gives the same numbers in any process.
TINY = ["--epochs", "1", "--train-subset", "300", "--val-size", "100", "--batch-size", "50", "--threads", "1"]
# Long enough that the member a worker takes after its first one is still training when SIGTERM
# comes (a stop waits for the end of an epoch: a one-epoch member of 300 images could finish first).
LONGER = ["--epochs", "2", "--train-subset", "1000", "--val-size", "100", "--batch-size", "50", "--threads", "1"]


def _trained(out, names):
    """Each run's best validation loss and the time its training.json was written."""
    return {
        n: (
            json.loads((out / n / runs.TRAINING).read_text())["best_val_loss"],
            (out / n / runs.TRAINING).stat().st_mtime_ns,
        )
        for n in names
    }


def test_seeds_on_two_workers_are_the_runs_one_worker_trains(tmp_path, data_dir, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["train", "--arch", "simple", "--seeds", "0,1", "--data-dir", str(data_dir), "--quiet", "--json", *TINY]
    assert main([*base, "--out", str(one)]) == 0  # in this process, one after another
    capsys.readouterr()
    assert main([*base, "--out", str(two), "--workers", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["seed"], r["run_dir"]) for r in rows] == [(0, str(two / "seed0")), (1, str(two / "seed1"))]
    first = _trained(two, ["seed0", "seed1"])
    assert {n: loss for n, (loss, _) in first.items()} == {
        n: loss for n, (loss, _) in _trained(one, ["seed0", "seed1"]).items()
    }
    assert (two / "repeats.db").is_file()
    assert main([*base, "--out", str(two), "--workers", "2"]) == 0  # again: both kept, nothing trained
    assert _trained(two, ["seed0", "seed1"]) == first


def test_an_ensemble_stopped_by_sigterm_continues_without_training_a_finished_member_again(tmp_path, data_dir, capsys):
    out = tmp_path / "ens"
    argv = [
        "ensemble-train",
        "--archs",
        "simple",
        "--seeds",
        "0-2",
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--quiet",
        *LONGER,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", *argv, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list(out.glob("simple-s*/metrics.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # two workers: one member evaluated, the third one not yet done
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"resume with: mnistlab {' '.join(argv)} --workers 2" in err
    done = [p.parent.name for p in out.glob("simple-s*/metrics.json")]
    before = _trained(out, done)
    assert main([*argv, "--workers", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    states = {m["run_dir"].rsplit("/", 1)[1]: m["state"] for m in result["members"]}
    assert {states[n] for n in done} == {"reused"} and "trained" in states.values(), states
    assert _trained(out, done) == before  # the finished members' files untouched
    assert all((out / n / runs.METRICS).is_file() for n in states)
