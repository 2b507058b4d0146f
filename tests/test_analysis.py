"""Analysis: plot files, ECE and temperature scaling against hand-computed cases, uncertainty,
MC dropout, comparison, multi-seed training and the CLI's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from mnistlab.analysis import plots, plots_compare, plots_confidence, plots_errors
from mnistlab.analysis.style import pixel_size
from mnistlab.analysis.uncertainty import error_auroc, predictive_entropy, score_aurocs, uncertainty_scores
from mnistlab.cli import main
from mnistlab.errors import UserError
from mnistlab.maths.calibration import calibrate, fit_temperature, reliability
from mnistlab.maths.metrics import confusion_matrix, ece, per_class, softmax, top_confusions

pytest_plugins = ["analysis_fixtures"]  # session fixtures shared with test_report.py

NAMES = [str(d) for d in range(10)]
HISTORY = [{"epoch": e, "train_loss": tl, "val_loss": vl, "train_acc": 1 - tl / 3, "val_acc": 1 - vl / 3,
            "lr": 1e-3 / e} for e, tl, vl in [(1, 1.0, 0.8), (2, 0.6, 0.5), (3, 0.4, 0.55), (4, 0.3, 0.6)]]


def _plot_cases(logits, labels, images):
    probs = softmax(logits)
    cm = confusion_matrix(logits, labels, 10)
    scores = uncertainty_scores(logits)
    wrong = logits.argmax(1) != labels
    result = {"groups": [{"model": "a", "runs": 2, "accuracy_mean": 0.9, "accuracy_std": 0.01, "params": 1000,
                          "train_seconds": 10.0, "per_class_accuracy": [0.9] * 10}],
              "runs": [{"model": "a", "accuracy": a, "params": 1000, "train_seconds": 10.0} for a in (0.89, 0.91)],
              "class_names": NAMES}
    return [
        ("curves", lambda p: plots.plot_training_curves(HISTORY, 2, p), plots.SIZES["training_curves"]),
        ("confusion", lambda p: plots.plot_confusion_matrices(cm, NAMES, p), plots.SIZES["confusion_matrices"]),
        ("per_class", lambda p: plots.plot_per_class(per_class(logits, labels, NAMES), p), plots.SIZES["per_class"]),
        ("errors", lambda p: plots_errors.plot_misclassified(images, labels, probs, NAMES, p),
         plots_errors.SIZES["misclassified"]),
        ("pairs", lambda p: plots_errors.plot_confused_pairs(top_confusions(cm), NAMES, p),
         plots_errors.SIZES["confused_pairs"]),
        ("examples", lambda p: plots_errors.plot_examples(images, labels, NAMES, p), plots_errors.SIZES["examples"]),
        ("confidence", lambda p: plots_confidence.plot_confidence(logits, labels, p), plots_confidence.SIZES["confidence"]),
        ("reliability", lambda p: plots_confidence.plot_reliability(logits, labels, 1.5, p),
         plots_confidence.SIZES["reliability"]),
        ("uncertainty", lambda p: plots_confidence.plot_uncertainty(
            scores, {k: wrong for k in scores}, score_aurocs(logits, labels), p), plots_confidence.SIZES["uncertainty"]),
        ("compare", lambda p: plots_compare.plot_comparisons(result, p.parent / "cmp")["per_class_accuracy"],
         plots_compare.SIZES["per_class_accuracy"]),
    ]


def test_every_plot_writes_a_png_of_the_expected_size(synthetic, tmp_path):
    for name, draw, size in _plot_cases(*synthetic):
        path = tmp_path / f"{name}.png"
        returned = draw(path)
        if name == "compare":
            path = returned
        assert path.stat().st_size > 5_000, name
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == pixel_size(*size), name


def test_misclassified_grid_shows_at_least_20_errors_most_confident_first(synthetic, tmp_path):
    logits, labels, images = synthetic
    errors = plots_errors.plot_misclassified(images, labels, softmax(logits), NAMES, tmp_path / "e.png")
    assert len(errors) >= 20
    conf = [e["confidence"] for e in errors]
    assert conf == sorted(conf, reverse=True)
    assert all(e["true"] != e["predicted"] for e in errors)


def test_overfitting_flag_when_val_loss_rises_while_train_loss_falls(tmp_path):
    assert plots.overfitting_epochs(HISTORY) == [3, 4]
    assert plots.plot_training_curves(HISTORY[:2], 2, tmp_path / "c.png")["overfitting"] is False


def test_ece_hand_computed():
    # Every example at confidence 0.8 (logit gap ln 4), right 3 times in 4: ECE = |0.75 − 0.8|.
    logits = np.array([[math.log(4), 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert ece(logits, labels) == pytest.approx(0.05)
    # Two bins: conf 0.8 (all right: gap 0.2) and conf 0.6 (half right: gap 0.1) → 0.5·0.2 + 0.5·0.1.
    logits = np.array([[math.log(4), 0]] * 2 + [[math.log(1.5), 0]] * 2)
    labels = np.array([0, 0, 0, 1])
    r = reliability(logits, labels)
    assert r["ece"] == pytest.approx(0.15)
    filled = r["counts"] > 0
    recomputed = (r["counts"][filled] / 4 * np.abs(r["accuracy"][filled] - r["confidence"][filled])).sum()
    assert recomputed == pytest.approx(r["ece"])


def test_temperature_hand_computed():
    # Confidence sigmoid(4/T) must equal the accuracy 0.75: T = 4 / ln 3.
    logits = np.array([[4.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(4 / math.log(3), rel=1e-3)
    # Already calibrated (confidence 0.75, accuracy 0.75): T = 1.
    assert fit_temperature(np.array([[math.log(3), 0.0]] * 4), labels) == pytest.approx(1.0, rel=1e-3)
    # Under-confident logits need T < 1.
    assert fit_temperature(np.array([[0.5, 0.0]] * 4), np.zeros(4, int)) < 0.1


def test_calibration_fits_on_validation_only():
    # Logits drawn from a calibrated model (label ~ softmax(z)), then multiplied by 3: T should be ≈ 3.
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (8000, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(z)])
    logits = z * 3
    a = calibrate(logits[:4000], labels[:4000], logits[4000:], labels[4000:])
    # Test labels never reach the fit: scrambling them leaves the temperature unchanged.
    b = calibrate(logits[:4000], labels[:4000], logits[4000:], np.roll(labels[4000:], 1))
    assert a["temperature"] == b["temperature"]
    assert a["temperature"] == pytest.approx(3.0, rel=0.1)
    assert a["ece_after"] < a["ece_before"] / 3 and a["nll_after"] < a["nll_before"]


def test_uncertainty_scores_and_auroc():
    assert error_auroc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert error_auroc(np.array([0.1, 0.9]), np.array([True, False])) == 0.0
    assert error_auroc(np.array([0.5, 0.5]), np.array([False, False])) is None
    np.testing.assert_allclose(predictive_entropy(np.full((1, 10), 0.1)), [math.log(10)])
    # A calibrated model: its low-confidence predictions are the ones most often wrong.
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (3000, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(logits)])
    aurocs = score_aurocs(logits, labels)
    assert set(aurocs) == {"max_prob", "entropy"}
    assert all(0.7 < a["auroc"] < 1.0 and a["n"] == 3000 for a in aurocs.values())


def test_mc_dropout_keeps_batch_norm_in_eval_mode():
    import torch

    from mnistlab.analysis.uncertainty import has_dropout, mc_dropout
    from mnistlab.models import create_model

    torch.manual_seed(0)
    model = create_model("deeper").eval()
    assert has_dropout(model) and not has_dropout(create_model("simple"))
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    x = torch.randn(6, 1, 28, 28)
    out = mc_dropout(model, x, passes=4, seed=0)
    torch.testing.assert_close(bn.running_mean, before)
    assert not any(m.training for m in model.modules())
    np.testing.assert_allclose(out["mean_probs"].sum(1), 1.0, atol=1e-5)
    assert (out["mutual_info"] > 0).all()  # passes disagree: dropout really was on
    again = mc_dropout(model, x, passes=4, seed=0)
    np.testing.assert_array_equal(out["mean_probs"], again["mean_probs"])


def test_analyze_run_writes_plots_and_summary(two_runs):
    run = two_runs[0]
    summary = json.loads((run / "analysis.json").read_text())
    for rel in summary["figures"].values():
        assert (run / rel).stat().st_size > 5_000
    assert {"training_curves", "confusion_matrices", "misclassified", "reliability", "uncertainty"} <= set(summary["figures"])
    assert summary["calibration"]["temperature"] > 0
    assert any("no dropout" in n for n in summary["notes"])  # `simple` has no dropout
    assert not (run / "mc_dropout.npz").exists()


def test_compare_two_seeds_gives_mean_and_std(two_runs, tmp_path):
    from mnistlab.analysis.compare import compare_runs, write_comparison

    result = compare_runs(two_runs)
    (group,) = result["groups"]
    accs = [r["accuracy"] for r in result["runs"]]
    assert group["runs"] == 2 and group["seeds"] == [0, 1]
    assert group["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    paths = write_comparison(result, tmp_path)
    assert "±" in (tmp_path / "comparison.md").read_text()
    assert len((tmp_path / "comparison.csv").read_text().splitlines()) == 3
    assert all((tmp_path / "plots" / "model_comparisons" / f"{n}.png").is_file() for n in plots_compare.SIZES)
    assert json.loads((tmp_path / "comparison.json").read_text())["groups"][0]["runs"] == 2
    assert set(paths) >= {"markdown", "csv", "json"}


def test_cli_errors_exit_2(tmp_path, trained_run, capsys):
    assert main(["plots", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((trained_run / "config.json").read_text())
    for cmd in (["plots", str(bare)], ["report", str(bare), "-o", str(tmp_path / "r.html")], ["compare", str(bare)]):
        assert main(cmd) == 2
        assert "run 'mnistlab evaluate" in capsys.readouterr().err


def test_train_seeds_trains_one_run_per_seed(tmp_path, data_dir):
    from mnistlab.config import TrainConfig
    from mnistlab.experiments.multiseed import parse_seeds, train_seeds

    assert parse_seeds("0,2-3") == [0, 2, 3]
    with pytest.raises(UserError):
        parse_seeds("1,1")
    cfg = TrainConfig(arch="simple", epochs=1, train_subset=200, val_size=100, augment=False)
    results = train_seeds(cfg, tmp_path, [0, 1], data_dir=str(data_dir), progress=False)
    assert [r["seed"] for r in results] == [0, 1]
    seeds = [json.loads((tmp_path / f"seed{s}" / "config.json").read_text())["train"]["seed"] for s in (0, 1)]
    assert seeds == [0, 1]
