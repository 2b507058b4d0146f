"""Transfer runs end to end: safe sources, recorded provenance, the body carried (or not), the curve."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mnistlab import runs
from mnistlab.cli import main
from mnistlab.errors import UserError
from mnistlab.models.heads import classifier_name
from mnistlab.runconfig import RunConfig
from mnistlab.frameworks.pytorch import load_model
from mnistlab.transfer.run import default_budget, transfer_run
from mnistlab.transfer.source import open_source


def _copy_with_config(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / runs.CONFIG).read_text())
    config.update(changes)
    (dst / runs.CONFIG).write_text(json.dumps(config))
    return dst


def test_a_source_on_the_target_data_set_is_refused(trained_run, capsys):
    code = main(["transfer", str(trained_run), "--to", "mnist", "--mode", "finetune", "--out", "/nonexistent/x"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "trained on mnist already" in err and "\n" not in err


def test_keras_and_ensemble_sources_are_refused(trained_run, tmp_path):
    keras = _copy_with_config(trained_run, tmp_path / "keras", framework="keras", model_file="model.keras")
    with pytest.raises(UserError, match="a keras run; transfer starts from a PyTorch run"):
        open_source(keras, "fashion-mnist")
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    raw = {"kind": "ensemble", "framework": "ensemble", "dataset": "mnist",
           "data": {"class_names": [str(d) for d in range(10)], "num_classes": 10},
           "members": [{"run_dir": "a"}, {"run_dir": "b"}]}
    runs.write_config(ensemble, RunConfig.from_dict(raw, ensemble))
    with pytest.raises(UserError, match="ensemble has no single body"):
        open_source(ensemble, "fashion-mnist")


def test_damaged_source_weights_are_one_line(trained_run, tmp_path):
    broken = _copy_with_config(trained_run, tmp_path / "broken")
    (broken / runs.WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="cannot load weights"):
        open_source(broken, "fashion-mnist")


def test_default_budget_is_a_few_hundred_steps():
    for n in (100, 1000, 10_000, 55_000):
        epochs, batch = default_budget(n)
        assert 3 <= epochs <= 40 and 16 <= batch <= 128
        assert epochs * -(-n // batch) >= 280 or epochs == 40


@pytest.mark.slow
def test_features_keeps_the_source_body_and_records_where_it_came_from(trained_run, tmp_path, data_dir):
    out = tmp_path / "features"
    # lr 3e-2: a linear probe alone trains, so it takes a larger step than a whole network's default
    summary = transfer_run(trained_run, "fashion-mnist", "features", train_subset=300, epochs=3, lr=3e-2, out=out,
                           data_dir=str(data_dir), progress=False)
    config = runs.read_config(out)
    source_bytes = (trained_run / runs.WEIGHTS).read_bytes()
    assert config.transfer_from.to_dict() == {"run": str(trained_run), "sha256": hashlib.sha256(source_bytes).hexdigest(),
                                              "dataset": "mnist", "arch": "simple", "initialised": "body"}
    assert config.train.transfer == {"mode": "features", "recipe": "frozen"}
    assert config.dataset == "fashion-mnist" and config.data.n_train == 300
    source, new = load_file(str(trained_run / runs.WEIGHTS)), load_file(str(out / runs.WEIGHTS))
    head = classifier_name(load_model(out)[0]) + "."
    for key in source:
        assert torch.equal(source[key], new[key]) != key.startswith(head), key
    # 51 steps of a linear probe on 300 labels, 5,000 validation images: 0.54 at seed 0 (0.59 at seed 1); chance 0.10
    assert summary["best_val_acc"] >= 0.45
    assert main(["evaluate", str(out), "--json"]) == 0  # an ordinary run directory


@pytest.mark.slow
def test_finetune_chooses_its_recipe_on_validation_and_scratch_starts_afresh(trained_run, tmp_path, data_dir):
    out = tmp_path / "finetune"
    summary = transfer_run(trained_run, "fashion-mnist", "finetune", train_subset=300, epochs=2, out=out,
                           data_dir=str(data_dir), progress=False)
    trials = runs.read_config(out).transfer_from.recipe_trials
    assert [t.recipe for t in trials] == ["all", "lower-body", "head-first"]
    best = max(trials, key=lambda t: (t.best_val_acc, -t.best_val_loss))
    assert summary["recipe"] == best.recipe == runs.read_config(out).train.transfer["recipe"]
    assert (out / runs.WEIGHTS).read_bytes() == (out / "trials" / best.recipe / runs.WEIGHTS).read_bytes()
    source = load_file(str(trained_run / runs.WEIGHTS))
    tuned = load_file(str(out / runs.WEIGHTS))
    assert not torch.equal(source["features.0.weight"], tuned["features.0.weight"])  # the body trained

    scratch = tmp_path / "scratch"
    # seed 1: the source (seed 0) started from seed 0's initialisation, which scratch with seed 0 would share
    transfer_run(trained_run, "fashion-mnist", "scratch", train_subset=300, epochs=1, seed=1, out=scratch,
                 data_dir=str(data_dir), progress=False)
    assert runs.read_config(scratch).transfer_from.initialised == "random"
    from_scratch = load_file(str(scratch / runs.WEIGHTS))
    # independent initialisations differ by ~0.15 on average; a copied body trained one epoch by ~0.01
    assert (from_scratch["features.0.weight"] - source["features.0.weight"]).abs().mean() > 0.05


@pytest.mark.slow
def test_the_curve_on_two_workers_writes_its_table_and_reuses_finished_points(trained_run, tmp_path, data_dir, capsys):
    pytest.importorskip("optuna", reason="--workers needs mnistlab[sweep]")
    out = tmp_path / "curve"
    args = ["transfer-curve", str(trained_run), "--to", "fashion-mnist", "--subsets", "50,100", "--seeds", "0",
            "--modes", "features,scratch", "--epochs", "2", "--threads", "1", "--workers", "2", "--out", str(out),
            "--quiet", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(r["run_dir"] for r in result["rows"]) == sorted(
        str(out / "runs" / m / f"n{n}" / "seed0") for m in ("features", "scratch") for n in (50, 100))
    assert not any(r["reused"] for r in result["rows"])
    assert {(r["subset"], r["mode"]) for r in result["summary"]} == {
        (s, m) for s in ("50", "100") for m in ("features", "scratch")}
    assert all(0 < r["test_acc_mean"] <= 1 for r in result["summary"])
    for name in ("curve.md", "curve.csv", "curve.json", "curve.png"):
        assert (out / name).stat().st_size > 0
    assert "| 100 |" in (out / "curve.md").read_text()
    assert main(args) == 0
    assert all(r["reused"] for r in json.loads(capsys.readouterr().out)["rows"])


@pytest.mark.parametrize("dataset", ["fashion-mnist", "mnist"])
def test_curve_subsets_are_nested_and_share_the_validation_split(dataset, data_dir):
    from mnistlab.data.datasets import load_train_val

    picks = [load_train_val(dataset, data_dir=str(data_dir), train_subset=n) for n in (100, 1000, 10_000, None)]
    for small, big in zip(picks, picks[1:]):
        assert set(small.train_indices.tolist()) <= set(big.train_indices.tolist())
        assert torch.equal(small.val_indices, big.val_indices)


def _transfer_config() -> dict:
    from test_hardening_runconfig import CONFIG

    config = json.loads(json.dumps(CONFIG))
    config["dataset"] = config["train"]["dataset"] = "fashion-mnist"
    config["train"]["transfer"] = {"mode": "finetune", "recipe": "all"}
    config["transfer_from"] = {"run": "runs/simple", "sha256": "ab" * 32, "dataset": "mnist", "arch": "simple",
                               "initialised": "body", "recipe_choice": "validation",
                               "recipe_trials": [{"recipe": "all", "best_val_acc": 0.8, "best_val_loss": 0.5,
                                                  "best_epoch": 3}]}
    return config


@pytest.mark.parametrize("where,value,message", [
    ("sha256", "../../etc/passwd", "sha256"),
    ("initialised", "copied", "initialised"),
    ("recipe_trials", [{"recipe": "all", "best_val_acc": 2.0, "best_val_loss": 0.5, "best_epoch": 3}], "outside"),
    ("recipe_trials", "all", "list"),
    ("exec", "rm -rf", "unknown key"),
])
def test_a_tampered_transfer_record_is_refused(where, value, message):
    from mnistlab.runcheck import validate_config

    config = _transfer_config()
    validate_config(copy.deepcopy(config), "runs/x")  # the untouched record loads
    config["transfer_from"][where] = value
    with pytest.raises(UserError, match=message):
        validate_config(config, "runs/x")
    config = _transfer_config()
    config["train"]["transfer"] = {"mode": "features", "recipe": "all"}
    with pytest.raises(UserError, match="frozen"):
        validate_config(config, "runs/x")
