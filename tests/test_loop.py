"""The shared epoch loop: sharding, devices, TensorBoard, and one loop for every trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnistlab import cli, frameworks, runs
from mnistlab.config import TrainConfig
from mnistlab.errors import UserError
from mnistlab.frameworks import FRAMEWORKS, available
from mnistlab.training import loop
from mnistlab.training.distributed import DistContext, strip_nproc
from mnistlab.training.loop import global_batches, steps_per_epoch
from mnistlab.training.trainer import train

SMALL = dict(arch="simple", epochs=1, train_subset=500, val_size=200, batch_size=64, seed=1)


@pytest.mark.parametrize("n,batch,world", [(10, 4, 2), (1000, 128, 2), (1001, 64, 3), (7, 7, 1)])
def test_ranks_share_each_global_batch_of_one_permutation(n, batch, world):
    """Together the ranks' batches are the single-process batches (less a last scrap too small to share)."""
    single = global_batches(n, batch, torch.Generator().manual_seed(5), DistContext())
    shards = [global_batches(n, batch, torch.Generator().manual_seed(5), DistContext(rank=r, world_size=world))
              for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    assert len(shards[0]) == steps_per_epoch(n, batch, world)
    for i, parts in enumerate(zip(*shards)):
        merged = torch.cat(parts)
        assert sorted(merged.tolist()) == sorted(single[i].tolist())
        assert min(len(p) for p in parts) >= 1


def _framework(name: str):
    """A test parameter per registered framework: skipped without its extra; slow beyond PyTorch, whose
    trainers import a second library first (TensorFlow: seconds)."""
    marks = [pytest.mark.skipif(not available(name), reason=f"needs mnistlab[{name}]")]
    if name != "torch":
        marks += [pytest.mark.slow, getattr(pytest.mark, name)]
    return pytest.param(name, marks=marks)


@pytest.mark.parametrize("framework", [_framework(f) for f in FRAMEWORKS])
def test_every_framework_trains_its_epochs_in_the_one_loop(framework, tmp_path, data_dir, monkeypatch):
    """Each framework's trainer, spied on: every epoch in history.csv was trained by training/loop.py."""
    real, trained = loop._train_epoch, []

    def spy(step, cfg, data, tensors, epoch, opts, bar):
        trained.append(epoch)
        return real(step, cfg, data, tensors, epoch, opts, bar)

    monkeypatch.setattr(loop, "_train_epoch", spy)
    summary = frameworks.get(framework).train(TrainConfig(**{**SMALL, "epochs": 2}, framework=framework),
                                              tmp_path / "run", progress=False)
    assert trained == [1, 2] and summary["epochs_run"] == 2
    assert [int(r["epoch"]) for r in runs.read_history(tmp_path / "run")] == trained


def test_unknown_device_is_a_user_error():
    with pytest.raises(UserError, match="--device"):
        TrainConfig(device="gpu")


def test_cuda_without_a_gpu_is_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    code = cli.main(["train", "--arch", "simple", "--device", "cuda", "--epochs", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--device cuda" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cpu_device_is_recorded(tmp_path, data_dir):
    train(TrainConfig(**SMALL, device="cpu"), tmp_path / "cpu", progress=False)
    config = runs.read_config(tmp_path / "cpu")
    assert config.device == "cpu" and config.train.device == "cpu"


def test_nproc_is_removed_from_the_relaunched_command():
    assert strip_nproc(["train", "--nproc", "2", "--arch", "simple", "--nproc=3"]) == ["train", "--arch", "simple"]


def read_board(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_events_hold_the_history(tmp_path, data_dir):
    run = tmp_path / "tb"
    train(TrainConfig(**{**SMALL, "epochs": 2}, tensorboard=True), run, progress=False)
    board = read_board(run)
    tags = board.Tags()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= set(tags["scalars"])
    assert any(t.startswith("grad_norm/") for t in tags["scalars"])
    assert "val/misclassified" in tags["images"]
    history = runs.read_history(run)
    logged = [(e.step, e.value) for e in board.Scalars("accuracy/val")]
    assert logged == [(int(r["epoch"]), pytest.approx(r["val_acc"], abs=1e-6)) for r in history]


def test_no_tensorboard_folder_unless_asked(trained_run):
    assert not (trained_run / "tensorboard").exists()


def test_too_few_steps_for_onecycle_is_a_user_error(tmp_path, data_dir):
    """500 images in batches of 128 for 1 epoch: 4 steps, where OneCycle's warm-up ends at step 0 (was a ZeroDivisionError)."""
    with pytest.raises(UserError, match="--scheduler onecycle cannot run exactly 4"):
        train(TrainConfig(**{**SMALL, "batch_size": 128}), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before the run directory was made
    train(TrainConfig(**{**SMALL, "batch_size": 128, "scheduler": "none"}), tmp_path / "ok", progress=False)
