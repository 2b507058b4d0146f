"""Training: accuracy floor, determinism, resume, run directory contents, evaluation keys."""

import json

import numpy as np
import pytest
import torch

from mnistlab import runs
from mnistlab.config import TrainConfig, preset
from mnistlab.errors import UserError
from mnistlab.frameworks.pytorch import load_model
from mnistlab.training.trainer import train

TINY = dict(arch="simple", epochs=2, train_subset=2000, val_size=500, batch_size=64, seed=3)


def test_short_run_reaches_accuracy_floor(trained_run):
    summary = json.loads((trained_run / runs.TRAINING).read_text())
    assert summary["best_val_acc"] >= 0.95


def test_run_directory_explains_itself(trained_run):
    config = runs.read_config(trained_run)
    for key in ("schema_version", "framework", "dataset", "kind", "arch", "params", "threads", "environment"):
        assert key in config.to_dict()
    assert config.data.mean == pytest.approx(0.1307) and config.data.std == pytest.approx(0.3081)
    assert config.data.class_names == tuple(str(i) for i in range(10))
    history = runs.read_history(trained_run)
    assert len(history) == 1 and {"train_loss", "val_loss", "val_acc", "lr", "seconds"} <= set(history[0])
    model, _ = load_model(trained_run)  # rebuilt from the directory alone
    assert not model.training


def test_evaluate_writes_documented_keys(trained_run):
    metrics = json.loads((trained_run / runs.METRICS).read_text())
    for key in ("accuracy", "n_samples", "per_class", "macro_f1", "confusion_matrix", "top_confusions",
                "high_confidence_errors", "nll", "ece", "params"):
        assert key in metrics, key
    assert metrics["n_samples"] == 10_000 and 0.9 < metrics["accuracy"] <= 1
    assert np.array(metrics["confusion_matrix"]).shape == (10, 10)
    logits, labels = runs.load_predictions(trained_run / runs.PREDICTIONS)
    assert logits.shape == (10_000, 10)
    assert (logits.argmax(1) == labels).mean() == pytest.approx(metrics["accuracy"])


def test_same_seed_same_results(tmp_path, data_dir):
    a = train(TrainConfig(**TINY), tmp_path / "a", progress=False)
    b = train(TrainConfig(**TINY), tmp_path / "b", progress=False)
    assert a["best_val_loss"] == b["best_val_loss"]
    ha, hb = runs.read_history(tmp_path / "a"), runs.read_history(tmp_path / "b")
    assert [r["train_loss"] for r in ha] == [r["train_loss"] for r in hb]


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, data_dir, kill_after_first_epoch):
    full = train(TrainConfig(**TINY), tmp_path / "full", progress=False)
    kill_after_first_epoch(train, TrainConfig(**TINY), tmp_path / "killed")
    assert len(runs.read_history(tmp_path / "killed")) == 1
    resumed = train(None, tmp_path / "killed", resume=True, progress=False)
    assert resumed["epochs_run"] == 2
    assert resumed["best_val_loss"] == pytest.approx(full["best_val_loss"], abs=1e-6)
    with pytest.raises(UserError, match="already finished"):
        train(None, tmp_path / "killed", resume=True, progress=False)


def test_existing_run_is_not_overwritten_without_force(tmp_path, data_dir):
    cfg = TrainConfig(**{**TINY, "epochs": 1})
    train(cfg, tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="--force"):
        train(cfg, tmp_path / "r", progress=False)
    train(cfg, tmp_path / "r", progress=False, force=True)


def test_early_stopping_stops_and_keeps_best(tmp_path, data_dir):
    # lr so small that no prediction changes: validation accuracy never improves after epoch 1
    cfg = TrainConfig(**{**TINY, "epochs": 6, "patience": 2, "scheduler": "none", "lr": 1e-12,
                         "augment": False, "train_subset": 500, "monitor": "val_acc"})
    summary = train(cfg, tmp_path / "es", progress=False)
    assert summary["stop_reason"] == "early_stopping"
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1


def test_seed_preset_is_the_original_recipe():
    cfg = preset("seed", arch="simple")
    assert (cfg.scheduler, cfg.step_size, cfg.gamma, cfg.lr, cfg.weight_decay, cfg.patience, cfg.batch_size) == (
        "step", 7, 0.1, 1e-3, 1e-3, 3, 128)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1.0), dict(scheduler="cosine"), dict(val_size=0)])
def test_bad_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


def test_crash_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, data_dir, monkeypatch):
    """A crash in the middle of epoch 2's checkpoint: epoch 1's checkpoint and history survive, resume continues."""
    cfg = TrainConfig(**{**TINY, "train_subset": 600, "val_size": 200})
    full = train(cfg, tmp_path / "full", progress=False)
    real_save = torch.save

    def crash_on_epoch_two(obj, f, *args, **kw):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f.write(b"half a checkpoint")  # serialised in memory first, then written atomically
            raise OSError("disk full")
        return real_save(obj, f, *args, **kw)

    monkeypatch.setattr(torch, "save", crash_on_epoch_two)
    with pytest.raises(OSError, match="disk full"):
        train(cfg, tmp_path / "crashed", progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    run = tmp_path / "crashed"
    assert torch.load(run / runs.CHECKPOINT, weights_only=True)["epoch"] == 1
    assert len(runs.read_history(run)) == 1  # the row of epoch 2 waits for its checkpoint
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file left
    resumed = train(None, run, resume=True, progress=False)
    assert [r["epoch"] for r in runs.read_history(run)] == [1, 2]
    assert resumed["best_val_loss"] == pytest.approx(full["best_val_loss"], abs=1e-6)


def test_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, trained_run):
    """--resume never unpickles: a checkpoint carrying a payload is a one-line error and the payload never runs."""
    import pathlib
    import shutil

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    run = tmp_path / "hostile"
    run.mkdir()
    shutil.copy(trained_run / runs.CONFIG, run / runs.CONFIG)  # a valid config: only the checkpoint is hostile
    torch.save({"epoch": 1, "done": False, "x": Payload()}, run / runs.CHECKPOINT)
    shutil.copy(run / runs.CHECKPOINT, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)  # proof that the file is armed
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError, match="not a safe mnistlab checkpoint") as err:
        train(None, run, resume=True, progress=False)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_amp_trains_under_bf16_autocast_on_cpu(tmp_path, data_dir, monkeypatch):
    from mnistlab import cli
    from mnistlab.commands.train import train_config_from_args

    args = cli.build_parser().parse_args(["train", "--arch", "simple", "--amp", "--epochs", "1", "--device", "cpu",
                                          "--train-subset", "2000", "--val-size", "200", "--batch-size", "64",
                                          "--lr", "3e-3"])
    cfg = train_config_from_args(args)
    assert cfg.amp == "on" and cfg.device == "cpu"  # --amp alone: on, as before --amp auto
    seen = []
    real = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((device_type, dtype, enabled))
        return real(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    summary = train(cfg, tmp_path / "amp", data_dir=str(data_dir), progress=False)
    assert seen and set(seen) == {("cpu", torch.bfloat16, True)}
    # it learns; bf16 did not break training: 32 steps reached 0.755 at seed 0 (0.75-0.77 over seeds 0-2); chance 0.10
    assert summary["best_val_acc"] >= 0.65
    config = runs.read_config(tmp_path / "amp")
    assert config.train.amp == "on" and config.device == "cpu"
    assert summary["precision"] == "bf16" and "--amp on" in summary["precision_reason"]
    assert (config.world_size, config.backend) == (1, None)
