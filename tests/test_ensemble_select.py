"""Ensemble selection and weighting on fixed logits: the right members, the right weights, and no test labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.ensembles import METHODS, ensemble_runs, select_weights
from mnistlab.ensembles.select import best_member, caruana, fitted_weights, label_probabilities, mixture_nll
from mnistlab.errors import UserError
from mnistlab.maths.combine import member_probabilities
from mnistlab.maths.metrics import softmax
from mnistlab.runconfig import RunConfig

N_CLASSES = 10


def _member_logits(labels: np.ndarray, strength: float, noise: float, seed: int) -> np.ndarray:
    """Logits that favour the true class by ``strength`` under Gaussian ``noise``: a member of some quality."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, noise, (len(labels), N_CLASSES))
    logits[np.arange(len(labels)), labels] += strength
    return logits


def _library(n: int = 2000, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Three useful members of different quality, each with its own errors, and one that is pure noise."""
    labels = np.random.default_rng(seed).integers(0, N_CLASSES, n)
    logits = [_member_logits(labels, 3.0, 1.0, seed + 1), _member_logits(labels, 2.5, 1.0, seed + 2),
              _member_logits(labels, 2.0, 1.0, seed + 3), _member_logits(labels, 0.0, 1.0, seed + 4)]
    return logits, labels


def test_caruana_drops_the_noise_member_and_beats_every_member_and_the_plain_average():
    logits, labels = _library()
    probs = member_probabilities(logits)
    q = label_probabilities(probs, labels)
    s = select_weights("caruana", probs, labels)
    assert s.metric == "val_nll" and s.weights[3] == 0.0 and sum(s.weights) == pytest.approx(1)
    assert s.counts is not None and max(s.counts) >= 2  # with replacement: the best member is picked again
    ours = mixture_nll(q, s.weights)
    assert ours < min(mixture_nll(q[i:i + 1], [1.0]) for i in range(4))
    assert ours < mixture_nll(q, np.ones(4))
    assert s.trace[0]["step"] == 0 and ours == pytest.approx(min(t["val_nll"] for t in s.trace))
    assert select_weights("caruana", probs, labels).weights == s.weights  # no randomness


def test_caruana_sorted_start_takes_the_best_k_members():
    """Two equally good members with independent errors: the start already averages both."""
    labels = np.random.default_rng(1).integers(0, N_CLASSES, 1000)
    probs = member_probabilities([_member_logits(labels, 2.0, 1.0, 5), _member_logits(labels, 2.0, 1.0, 6)])
    counts, trace = caruana(label_probabilities(probs, labels), rounds=0)
    assert sorted(trace[0]["start"]) == [0, 1] and counts.tolist() == [1, 1]


def test_fitted_weights_match_a_general_optimiser():
    """EM's mixture weights against scipy's SLSQP on the simplex (the reference), on the same NLL."""
    from scipy.optimize import minimize

    logits, labels = _library(n=1500, seed=3)
    q = label_probabilities(member_probabilities(logits), labels)
    ours = fitted_weights(q)
    ref = minimize(lambda w: mixture_nll(q, np.maximum(w, 1e-12)), np.full(4, 0.25), method="SLSQP",
                   bounds=[(0, 1)] * 4, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}]).x
    assert mixture_nll(q, ours) <= mixture_nll(q, ref) + 1e-6
    np.testing.assert_allclose(ours, ref, atol=0.02)
    caruana_w = select_weights("caruana", member_probabilities(logits), labels).weights
    assert mixture_nll(q, ours) <= mixture_nll(q, caruana_w) + 1e-9  # the optimum is at least as good


def test_plain_and_accuracy_weights():
    logits, labels = _library(n=500)
    probs = member_probabilities(logits)
    assert select_weights("all", probs, labels).weights == [0.25] * 4
    acc = np.array([(p.argmax(1) == labels).mean() for p in probs])
    np.testing.assert_allclose(select_weights("accuracy", probs, labels).weights, acc / acc.sum())
    with pytest.raises(ValueError, match="unknown selection"):
        select_weights("test", probs, labels)


def test_best_member_is_chosen_on_validation_with_nll_breaking_ties():
    assert best_member([0.99, 0.995, 0.995], [0.05, 0.04, 0.03]) == 2
    assert best_member([0.99, 0.99], [0.05, 0.05]) == 0


# ---- run directories: the test split never reaches a choice ----

def _fake_run(path: Path, val_logits, val_labels, test_logits, test_labels) -> Path:
    path.mkdir(parents=True)
    data = {"class_names": [str(i) for i in range(N_CLASSES)], "num_classes": N_CLASSES, "mean": 0.1307,
            "std": 0.3081, "image_size": 28, "in_channels": 1, "val_size": len(val_labels), "split_seed": 0}
    raw = {"kind": "train", "framework": "torch", "dataset": "mnist", "arch": "simple", "params": 100,
           "data": data, "train": {"seed": 0}}
    runs.write_config(path, RunConfig.from_dict(raw, path))
    runs.save_predictions(path / runs.VAL_PREDICTIONS, val_logits, val_labels)
    runs.save_predictions(path / runs.PREDICTIONS, test_logits, test_labels)
    return path


def _library_runs(root: Path, garbage_test: bool) -> list[Path]:
    """The same validation predictions; the test predictions real, or garbage (random logits and labels)."""
    val, val_labels = _library(n=1000, seed=7)
    test, test_labels = _library(n=800, seed=8)
    rng = np.random.default_rng(99)
    if garbage_test:
        test = [rng.normal(0, 5, z.shape) for z in test]
        test_labels = rng.integers(0, N_CLASSES, len(test_labels))
    return [_fake_run(root / f"m{i}", v, val_labels, t, test_labels) for i, (v, t) in enumerate(zip(val, test))]


@pytest.mark.parametrize("method", METHODS)
def test_weights_and_temperatures_do_not_depend_on_the_test_split(tmp_path, method):
    real = ensemble_runs(_library_runs(tmp_path / "real", False), selection=method, temperature=True,
                         out=tmp_path / "e-real")
    junk = ensemble_runs(_library_runs(tmp_path / "junk", True), selection=method, temperature=True,
                         out=tmp_path / "e-junk")
    for key in ("weight", "count", "temperature", "val_accuracy", "val_nll"):
        assert [m[key] for m in real["members"]] == [m[key] for m in junk["members"]], key
    assert real["val_accuracy"] == junk["val_accuracy"] and real["best_member"]["index"] == junk["best_member"]["index"]
    assert real["accuracy"] > 0.8 > junk["accuracy"]  # the test split did change, and a lot


def test_no_test_file_is_opened_before_the_weights_are_fixed(tmp_path, monkeypatch):
    import mnistlab.ensembles.build as build

    fixed: list[str] = []
    real_select, real_load = build.select_weights, runs.load_predictions

    def select(*args, **kwargs):
        fixed.append(args[0])
        return real_select(*args, **kwargs)

    def load(path):
        if Path(path).name == runs.PREDICTIONS and not fixed:
            raise AssertionError(f"{path} was read before the weights were fixed")
        return real_load(path)

    monkeypatch.setattr(build, "select_weights", select)
    monkeypatch.setattr(runs, "load_predictions", load)
    result = ensemble_runs(_library_runs(tmp_path, False), selection="caruana", temperature=True,
                           out=tmp_path / "e")
    assert fixed == ["caruana"] and result["members"][3]["weight"] == 0.0


def test_ensemble_run_reports_members_gain_and_the_best_member_by_validation(tmp_path):
    """Member 0 is best on validation, member 1 on test: the gain is measured against member 0."""
    val, val_labels = _library(n=1000, seed=11)
    test, test_labels = _library(n=1000, seed=12)
    test[0], test[1] = test[1], test[0]  # on test, the second member is now the strong one
    dirs = [_fake_run(tmp_path / f"m{i}", v, val_labels, t, test_labels) for i, (v, t) in enumerate(zip(val, test))]
    result = ensemble_runs(dirs, selection="caruana", out=tmp_path / "e")
    members = result["members"]
    assert result["best_member"]["index"] == 0
    assert members[1]["test_accuracy"] > members[0]["test_accuracy"]
    assert result["gain"]["test_accuracy"] == pytest.approx(result["accuracy"] - members[0]["test_accuracy"], abs=1e-6)
    assert result["gain"]["val_accuracy"] > 0 and members[3]["weight"] == 0
    assert result["selection"]["members_used"] == sum(m["weight"] > 0 for m in members)
    config = runs.read_config(tmp_path / "e")  # the new keys pass the config validator
    assert config.selection["method"] == "caruana" and config.weighting == "caruana_val_nll"
    saved, _ = runs.load_predictions(tmp_path / "e" / runs.PREDICTIONS)
    np.testing.assert_allclose(softmax(saved), sum(m["weight"] * softmax(z) for m, z in zip(members, test)), atol=1e-5)


def test_selection_needs_validation_predictions_and_sane_options(tmp_path):
    dirs = _library_runs(tmp_path, False)
    (dirs[1] / runs.VAL_PREDICTIONS).unlink()
    with pytest.raises(UserError, match="val_predictions.npz"):
        ensemble_runs(dirs, selection="caruana", out=tmp_path / "e")
    assert ensemble_runs(dirs, selection="all", out=tmp_path / "e2")["best_member"] is None  # no choice to make
    with pytest.raises(UserError, match="--weighted is --selection accuracy"):
        ensemble_runs(dirs, weighted=True, selection="caruana", out=tmp_path / "e3")
    with pytest.raises(UserError, match="--rounds"):
        ensemble_runs(dirs, selection="all", rounds=-1, out=tmp_path / "e4")
