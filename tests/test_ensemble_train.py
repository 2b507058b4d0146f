"""`ensemble-train`: members arch × seed, finished ones reused, interrupted ones resumed, then the ensemble."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.errors import UserError
from mnistlab.experiments.ensemble_train import ensemble_train, member_state, parse_members
from mnistlab.frameworks import Framework
from mnistlab.runconfig import RunConfig
from mnistlab.training.checkpoint import save_checkpoint

TINY = dict(epochs=2, train_subset=1000, val_size=500, batch_size=64, patience=0)


def test_parse_members():
    assert parse_members("deeper, resnet,keras:simple") == [("torch", "deeper"), ("torch", "resnet"),
                                                            ("keras", "simple")]
    for bad in ("nonsense", "simple,simple", "jax:simple", ""):
        with pytest.raises(UserError, match="--archs"):
            parse_members(bad)


def _config(path, cfg: TrainConfig):
    path.mkdir(parents=True, exist_ok=True)
    data = {"class_names": [str(i) for i in range(10)], "num_classes": 10, "mean": 0.1307, "std": 0.3081,
            "image_size": 28, "in_channels": 1, "val_size": cfg.val_size, "split_seed": 0}
    raw = {"kind": "train", "framework": "torch", "dataset": "mnist", "arch": cfg.arch, "params": 93_322,
           "data": data, "train": cfg.to_dict()}
    runs.write_config(path, RunConfig.from_dict(raw, path))
    return path


def test_member_state_from_what_the_folder_holds(tmp_path):
    cfg = TrainConfig(arch="simple", seed=3, **TINY)
    assert member_state(tmp_path / "missing", cfg) == "new"
    run = _config(tmp_path / "run", cfg)
    assert member_state(run, cfg) == "restart"  # created, killed before epoch 1 ended
    save_checkpoint(run / runs.CHECKPOINT, {"epoch": 1, "done": False})
    assert member_state(run, cfg) == "resume"
    save_checkpoint(run / runs.CHECKPOINT, {"epoch": 2, "done": True})
    assert member_state(run, cfg) == "resume"  # killed after the last checkpoint, before training.json: completed
    (run / runs.TRAINING).write_text("{}")
    assert member_state(run, cfg) == "done"
    # other settings that change what is learnt: an error naming the setting; threads do not count
    assert member_state(run, TrainConfig(arch="simple", seed=3, threads=1, **TINY)) == "done"
    with pytest.raises(UserError, match="epochs=2, not 5.*--force"):
        member_state(run, TrainConfig(arch="simple", seed=3, **{**TINY, "epochs": 5}))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a run directory"):
        member_state(tmp_path / "junk", cfg)


def test_cli_refuses_bad_plans_before_training(tmp_path, capsys):
    from mnistlab.cli import main

    assert main(["ensemble-train", "--archs", "nonsense", "--out", str(tmp_path / "a")]) == 2
    assert main(["ensemble-train", "--archs", "simple", "--seeds", "0", "--out", str(tmp_path / "b")]) == 2
    assert main(["ensemble-train", "--archs", "simple", "--seeds", "0-1000", "--out", str(tmp_path / "c")]) == 2
    assert "2 to 100 members" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def _options(parser, command):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.option_strings[0]: a.help for a in sub._actions if a.option_strings}


def test_training_options_are_trains_less_the_per_run_ones():
    from mnistlab.cli import build_parser
    from mnistlab.commands.train import PER_RUN_OPTIONS

    parser = build_parser()
    train, ens = _options(parser, "train"), _options(parser, "ensemble-train")
    per_run = {"--" + n.replace("_", "-") for n in PER_RUN_OPTIONS}
    # the options ensemble-train had before it shared train's definitions are all still there
    assert {"--preset", "--epochs", "--patience", "--batch-size", "--lr", "--train-subset", "--val-size",
            "--threads", "--device", "--amp", "--archs", "--seeds", "--selection", "--quiet"} <= set(ens)
    # train's own options: where its run goes, resuming it, logging it to MLflow
    shared = set(train) - per_run - {"--out", "--force", "--resume", "--seeds", "--quiet", "--track"}
    assert shared <= set(ens) and not per_run & set(ens)
    assert {o: ens[o] for o in shared} == {o: train[o] for o in shared}  # one help text per option


def test_cli_training_options_reach_every_member(tmp_path, monkeypatch, capsys):
    from mnistlab.cli import main
    from mnistlab.experiments import ensemble_train as ensemble_module

    seen = {}

    def fake(members, seeds, base, out, **kw):
        seen.update(members=members, seeds=seeds, base=base)
        raise UserError("stop here")

    monkeypatch.setattr(ensemble_module, "ensemble_train", fake)
    assert main(["ensemble-train", "--archs", "simple,resnet", "--seeds", "0,1", "--out", str(tmp_path),
                 "--optimizer", "adamw", "--label-smoothing", "0.1", "--no-augment", "--epochs", "3"]) == 2
    base = seen["base"]
    assert (base.optimizer, base.label_smoothing, base.augment, base.epochs) == ("adamw", 0.1, False, 3)
    assert seen["seeds"] == [0, 1] and "stop here" in capsys.readouterr().err


def _fake_train(framework, cfg, run_dir, *, force=False, **_kw):
    """What training and evaluating a member leaves, without either; the folder prepared as ``fit`` does."""
    runs.prepare_run_dir(run_dir, force=force)
    _config(run_dir, cfg)
    rng = np.random.default_rng(cfg.seed)
    for name, n in ((runs.VAL_PREDICTIONS, cfg.val_size), (runs.PREDICTIONS, 300)):
        labels = np.arange(n) % 10
        logits = rng.normal(0, 1, (n, 10))
        logits[np.arange(n), labels] += 2.0
        runs.save_predictions(run_dir / name, logits, labels)
    (run_dir / runs.METRICS).write_text(json.dumps({"accuracy": 0.9, "train_seconds": 1.0}))
    (run_dir / runs.TRAINING).write_text("{}")


@pytest.fixture
def fake_members(tmp_path, monkeypatch, caplog):
    """Run `ensemble-train --archs simple --seeds 0-1 --quiet` with members faked; returns the
    warnings of mnistlab.runs (the "removed the previous run" lines) each call logged."""
    from mnistlab.cli import main
    from mnistlab.data import datasets
    from mnistlab.sweep import members as members_module

    monkeypatch.setattr(Framework, "train", _fake_train)
    monkeypatch.setattr(members_module, "evaluate_run", lambda run_dir, **kw: None)  # the members' evaluation
    monkeypatch.setattr(datasets, "load_train_val", lambda *a, **kw: None)
    argv = ["ensemble-train", "--archs", "simple", "--seeds", "0-1", "--out", str(tmp_path / "ens"), "--quiet",
            "--json", *[o for k, v in TINY.items() for o in ("--" + k.replace("_", "-"), str(v))]]

    def removed(*extra):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mnistlab.runs"):
            assert main(argv + list(extra)) == 0
        return [r.getMessage() for r in caplog.records]

    return removed


def test_force_quiet_warns_about_the_members_it_deletes_not_about_the_ensemble(tmp_path, fake_members):
    """Like `train --force --quiet`: each deleted run is said (--quiet is 'no progress'); the ensemble
    folder, rebuilt on every call, never is."""
    out = tmp_path / "ens"
    assert fake_members() == []  # members trained, ensemble built
    assert fake_members() == []  # members reused, ensemble rebuilt: nothing the user made was deleted
    said = fake_members("--force")
    assert said == [f"--force: removed the previous run {out / m}" for m in ("simple-s0", "simple-s1")]
    assert runs.read_config(out / "ensemble").kind == "ensemble"


def test_a_member_killed_before_its_first_epoch_is_replaced_without_a_force_warning(tmp_path, fake_members):
    killed = _config(tmp_path / "ens" / "simple-s0", TrainConfig(arch="simple", seed=0, **TINY))
    assert member_state(killed, TrainConfig(arch="simple", seed=0, **TINY)) == "restart"
    assert fake_members() == []  # the user gave no --force
    assert (killed / runs.TRAINING).is_file()


def test_a_bad_rounds_fails_before_any_member_trains(tmp_path, monkeypatch, capsys):
    from mnistlab.cli import main

    monkeypatch.setattr(Framework, "train", lambda *a, **k: pytest.fail("trained first"))
    assert main(["ensemble-train", "--archs", "simple", "--seeds", "0-1", "--out", str(tmp_path / "e"),
                 "--rounds", "-1"]) == 2
    assert "--rounds -1" in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_temperature_without_scipy_fails_before_any_member_trains(tmp_path, monkeypatch, capsys):
    import sys

    from mnistlab.cli import main

    monkeypatch.setattr(Framework, "train", lambda *a, **k: pytest.fail("trained first"))
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import scipy.optimize now raises ImportError
    assert main(["ensemble-train", "--archs", "simple", "--seeds", "0-1", "--out", str(tmp_path / "e"),
                 "--temperature"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --temperature needs scipy; run: pip install 'mnistlab[analysis]'" or (
        "--temperature needs scipy" in err and len(err.splitlines()) == 1), err
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_ensemble_train_resumes_reuses_and_builds(tmp_path, data_dir, kill_after_first_epoch, monkeypatch, capsys):
    """Killed in the first member's first epoch → the next call resumes it, trains the second; a third reuses both."""
    from mnistlab.cli import main

    out = tmp_path / "ens"
    base = TrainConfig(**TINY)
    members = parse_members("simple")

    def run(cfg, out_dir, progress):
        ensemble_train(members, [0, 1], cfg, out_dir, data_dir=str(data_dir), progress=progress)

    kill_after_first_epoch(run, base, out)
    assert member_state(out / "simple-s0", TrainConfig(arch="simple", seed=0, **TINY)) == "resume"
    first = ensemble_train(members, [0, 1], base, out, data_dir=str(data_dir), progress=False)
    assert [m["state"] for m in first["members"]] == ["resumed", "trained"]
    assert json.loads((out / "simple-s0" / runs.TRAINING).read_text())["epochs_run"] == 2
    assert first["ensemble"]["val_accuracy"] >= first["ensemble"]["best_member"]["val_accuracy"] - 0.01
    assert len(first["spread"]) == 1 and first["spread"][0]["seeds"] == [0, 1]

    import mnistlab.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("a finished member was trained again"))
    rc = main(["ensemble-train", "--archs", "simple", "--seeds", "0-1", "--out", str(out), "--epochs", "2",
               "--train-subset", "1000", "--val-size", "500", "--batch-size", "64", "--patience", "0", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert rc == 0 and [m["state"] for m in again["members"]] == ["reused", "reused"]
    assert [m["weight"] for m in again["ensemble"]["members"]] == [m["weight"] for m in first["ensemble"]["members"]]
    assert runs.read_config(out / "ensemble").kind == "ensemble"
