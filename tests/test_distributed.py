"""Several processes (torchrun, gloo on CPU): one run directory, the same accuracy, two "nodes", resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

import mnistlab
from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.frameworks.pytorch import load_model
from mnistlab.training.trainer import train

pytestmark = pytest.mark.slow
# 1 epoch on 2,000 images with a constant lr: ~0.85 validation accuracy, a few seconds per process.
ARGS = ["--arch", "simple", "--epochs", "1", "--train-subset", "2000", "--val-size", "500", "--batch-size", "32",
        "--scheduler", "none", "--quiet"]
TIMEOUT = 300
# A launcher for the kill test: the CLI, stopped at a chosen epoch (see the file).
STOP_AT_EPOCH = Path(__file__).with_name("stop_at_epoch.py")


def env() -> dict[str, str]:
    src = str(Path(mnistlab.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*extra: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *extra, "-m", "mnistlab", "train"]


def test_two_processes_write_one_run_with_the_single_process_accuracy(tmp_path, data_dir):
    done = subprocess.run([sys.executable, "-m", "mnistlab", "train", *ARGS, "--nproc", "2", "--out", "two", "--json"],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)  # rank 0 alone printed: one JSON document
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]
    run = tmp_path / "two"
    config = runs.read_config(run)
    assert (config.world_size, config.backend, config.device) == (2, "gloo", "cpu")
    assert config.threads == max(1, len(os.sched_getaffinity(0)) // 2)
    assert len(runs.read_history(run)) == 1
    with safe_open(str(run / runs.WEIGHTS), "pt") as f:
        assert not [k for k in f.keys() if k.startswith("module.")]
    load_model(run)  # loads into the bare model

    cfg = TrainConfig(arch="simple", epochs=1, train_subset=2000, val_size=500, batch_size=32, scheduler="none")
    single = train(cfg, tmp_path / "one", data_dir=str(data_dir), progress=False)
    assert summary["best_val_acc"] > 0.7
    assert summary["best_val_acc"] == pytest.approx(single["best_val_acc"], abs=0.04)  # seeds alone move it ~0.05


def test_two_nodes_meet_through_the_c10d_rendezvous(tmp_path, data_dir):
    """Two torchrun launchers, one process each, as two machines: only global rank 0 writes --out."""
    rdzv = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "mnistlab-test"]
    nodes = [tmp_path / "node0", tmp_path / "node1"]
    procs = []
    for node in nodes:
        node.mkdir()
        procs.append(subprocess.Popen(torchrun(*rdzv) + [*ARGS, "--out", "run"], cwd=node, env=env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    written = [node for node in nodes if (node / "run").exists()]
    assert len(written) == 1  # LOCAL_RANK is 0 on both nodes; only RANK 0 touched its --out
    config = runs.read_config(written[0] / "run")
    assert config.world_size == 2 and json.loads((written[0] / "run" / runs.TRAINING).read_text())["best_val_acc"] > 0.7


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_a_killed_two_process_run_resumes(tmp_path, data_dir):
    run, stopped = tmp_path / "run", tmp_path / "stopped"
    stopped.mkdir()
    args = list(ARGS)
    args[args.index("--epochs") + 1] = "3"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              str(STOP_AT_EPOCH), "2", str(stopped), "train", *args, "--out", str(run)]
    with open(tmp_path / "launch.log", "w") as log:
        proc = subprocess.Popen(launch, env=env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not (stopped / "rank0").exists():  # rank 0 holds still there: epoch 1 saved, epoch 2 begun
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "launch.log").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        for pid in _children(proc.pid):  # the workers, then their launcher: a machine lost as epoch 2 begins
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    assert len(runs.read_history(run)) == 1
    done = subprocess.run([sys.executable, "-m", "mnistlab", "train", "--resume", str(run), "--nproc", "2", "--quiet",
                           "--json"], env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["resumed"] is True and summary["epochs_run"] == 3
    assert [r["epoch"] for r in runs.read_history(run)] == [1, 2, 3]
    assert summary["best_val_acc"] > 0.8
