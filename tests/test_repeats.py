"""Repeats on the sweep engine, fast parts: members as data, which members a study enqueues, what a
worker's trial runs, and the one-line mistakes (test_repeats_runs.py runs workers for real)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.frameworks import Framework
from mnistlab.runconfig import RunConfig
from mnistlab.sweep.members import TrainMember, TransferMember, member_from_dict
from mnistlab.sweep.repeats import study_name

TINY = {"epochs": 1, "train_subset": 300, "val_size": 100, "batch_size": 64, "patience": 0}


def test_members_round_trip_and_name_their_study_by_what_they_learn():
    train = TrainMember("simple-s1", TrainConfig(arch="simple", seed=1, **TINY), evaluate=True)
    transfer = TransferMember(
        "runs/features/n100/seed0",
        source="runs/a",
        to="fashion-mnist",
        mode="features",
        seed=0,
        subset=100,
        epochs=2,
        threads=1,
    )
    for member in (train, transfer):
        assert member_from_dict(json.loads(json.dumps(member.to_dict()))) == member
    same = TrainMember("simple-s1", TrainConfig(arch="simple", seed=1, threads=4, **TINY), evaluate=True)
    other = TrainMember("simple-s1", TrainConfig(arch="simple", seed=1, **{**TINY, "epochs": 2}), evaluate=True)
    assert study_name("ensemble", [train]) == study_name("ensemble", [same])  # threads: how fast, not what
    assert study_name("ensemble", [train]) != study_name("ensemble", [other])


def _finished(run_dir: Path, cfg: TrainConfig, best: float = 0.5) -> Path:
    """A run folder as a finished training leaves it (config.json, training.json)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "class_names": [str(i) for i in range(10)],
        "num_classes": 10,
        "mean": 0.1307,
        "std": 0.3081,
        "image_size": 28,
        "in_channels": 1,
        "val_size": cfg.val_size,
        "split_seed": 0,
    }
    raw = {
        "kind": "train",
        "framework": "torch",
        "dataset": "mnist",
        "arch": cfg.arch,
        "params": 93_322,
        "data": data,
        "train": cfg.to_dict(),
    }
    runs.write_config(run_dir, RunConfig.from_dict(raw, run_dir))
    (run_dir / runs.TRAINING).write_text(json.dumps({"best_val_acc": best}))
    return run_dir


def test_a_study_enqueues_each_unfinished_member_once(tmp_path):
    optuna = pytest.importorskip("optuna", reason="needs mnistlab[sweep]")
    from mnistlab.sweep.repeats import enqueue

    members = [TrainMember(f"seed{k}", TrainConfig(arch="simple", seed=k, **TINY)) for k in (0, 1, 2)]
    _finished(tmp_path / "seed0", members[0].cfg)
    study = optuna.create_study(direction="maximize")
    assert enqueue(study, members, tmp_path, force=False) == ["seed1", "seed2"]
    assert enqueue(study, members, tmp_path, force=False) == []  # waiting already: not twice
    assert enqueue(study, members, tmp_path, force=True) == ["seed0"]  # --force: the finished one too
    assert [t.user_attrs["member"] for t in study.trials] == ["seed1", "seed2", "seed0"]


def _fake_train(framework, cfg, run_dir, *, force=False, **_kw):
    """What a training leaves, without one: its best validation accuracy is 0.1 + seed / 100."""
    runs.prepare_run_dir(run_dir, force=force)
    _finished(run_dir, cfg, best=0.1 + cfg.seed / 100)
    rng = np.random.default_rng(cfg.seed)
    for name in (runs.VAL_PREDICTIONS, runs.PREDICTIONS):
        runs.save_predictions(run_dir / name, rng.normal(0, 1, (20, 10)), np.arange(20) % 10)
    (run_dir / runs.METRICS).write_text(json.dumps({"accuracy": 0.9}))


class _Trial:
    """The parts of an Optuna trial a member job uses."""

    def __init__(self, member: str):
        self.number, self.user_attrs = 0, {"member": member}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_a_workers_trial_runs_the_member_it_names_and_returns_its_val_accuracy(tmp_path, monkeypatch):
    from mnistlab.sweep.memberjob import PLAN_FILE, members_job
    from mnistlab.sweep.study import SweepSettings

    monkeypatch.setattr(Framework, "train", _fake_train)
    monkeypatch.setattr("mnistlab.data.datasets.load_train_val", lambda *a, **kw: None)
    members = [TrainMember(f"simple-s{k}", TrainConfig(arch="simple", seed=k, **TINY), evaluate=True) for k in (3, 4)]
    (tmp_path / PLAN_FILE).write_text(
        json.dumps({"force": False, "progress": False, "members": [m.to_dict() for m in members]})
    )
    job = members_job(SweepSettings(out=str(tmp_path), study="s", sampler="grid", job="members", threads=1))
    trial = _Trial("simple-s4")
    assert job.objective(trial) == pytest.approx(0.14)
    assert trial.user_attrs["member_state"] == "new" and not (tmp_path / "simple-s3").exists()
    assert runs.read_config(tmp_path / "simple-s4").train.threads == 1  # the worker's share of the cores
    assert job.objective(_Trial("simple-s4")) == pytest.approx(0.14)  # again: reused, not trained
    monkeypatch.setattr(Framework, "train", lambda *a, **k: pytest.fail("a finished member was trained again"))
    again = _Trial("simple-s4")
    job.objective(again)
    assert again.user_attrs["member_state"] == "done"


def test_repeat_options_are_refused_in_one_line_where_they_mean_nothing(tmp_path, capsys):
    assert main(["train", "--arch", "simple", "--workers", "2", "--out", str(tmp_path / "a")]) == 2
    assert "give --seeds" in capsys.readouterr().err
    assert main(["ensemble-train", "--archs", "simple", "--seeds", "0-1", "--join", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--join" in err and "--storage" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_member_trained_otherwise_is_refused_before_any_worker_starts(tmp_path, capsys):
    pytest.importorskip("optuna", reason="needs mnistlab[sweep]")
    out = tmp_path / "seeds"
    _finished(out / "seed0", TrainConfig(arch="simple", seed=0, **{**TINY, "epochs": 3}))
    argv = [
        "train",
        "--arch",
        "simple",
        "--seeds",
        "0,1",
        "--workers",
        "2",
        "--out",
        str(out),
        *[o for k, v in TINY.items() for o in ("--" + k.replace("_", "-"), str(v))],
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "trained with epochs=3, not 1" in err and "--force" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["seed0"]  # no study, no second run
