"""Training: accuracy floor, determinism, resume, run directory contents, evaluation keys."""

import json

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.config import TrainConfig, preset
from mnistlab.errors import UserError
from mnistlab.frameworks.pytorch import load_model
from mnistlab.training import trainer
from mnistlab.training.trainer import train

TINY = dict(arch="simple", epochs=2, train_subset=2000, val_size=500, batch_size=64, seed=3)


def test_short_run_reaches_accuracy_floor(trained_run):
    summary = json.loads((trained_run / runs.TRAINING).read_text())
    assert summary["best_val_acc"] >= 0.95


def test_run_directory_explains_itself(trained_run):
    config = runs.read_config(trained_run)
    for key in ("schema_version", "framework", "dataset", "kind", "arch", "params", "threads", "environment"):
        assert key in config
    assert config["data"]["mean"] == pytest.approx(0.1307) and config["data"]["std"] == pytest.approx(0.3081)
    assert config["data"]["class_names"] == [str(i) for i in range(10)]
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


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, data_dir, monkeypatch):
    full = train(TrainConfig(**TINY), tmp_path / "full", progress=False)

    real_end = trainer.EpochProgress.end_epoch

    def killed_after_first_epoch(self, row, note=""):
        real_end(self, row, note)
        raise KeyboardInterrupt  # what Ctrl-C or a kill after the first checkpoint leaves behind

    monkeypatch.setattr(trainer.EpochProgress, "end_epoch", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**TINY), tmp_path / "killed", progress=False)
    monkeypatch.setattr(trainer.EpochProgress, "end_epoch", real_end)
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


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash while saving leaves the previous weights file intact and no temp file."""
    from mnistlab.fileio import write_with

    target = tmp_path / "w.bin"
    target.write_bytes(b"old")

    def crash(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_with(target, crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]
