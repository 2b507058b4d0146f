"""Ensembles: the pure averaging on fixed logits, and the run-directory version with its checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.ensembles import ensemble_runs
from mnistlab.errors import UserError
from mnistlab.maths.combine import average_probabilities, ensemble_logits
from mnistlab.maths.metrics import softmax
from mnistlab.runconfig import RunConfig

# Two members on four images (labels 0, 1, 1, 0): A is right on images 0, 1, 2 (accuracy 0.75),
# B only on 1 and 3 (0.5), but confidently; their average is right on all four.
LOGITS_A = np.log(np.array([[0.9, 0.1], [0.45, 0.55], [0.4, 0.6], [0.4, 0.6]]))
LOGITS_B = np.log(np.array([[0.3, 0.7], [0.1, 0.9], [0.55, 0.45], [0.95, 0.05]]))
LABELS = np.array([0, 1, 1, 0])


def test_average_probabilities_by_hand():
    probs = average_probabilities([softmax(LOGITS_A), softmax(LOGITS_B)])
    np.testing.assert_allclose(probs, [[0.6, 0.4], [0.275, 0.725], [0.475, 0.525], [0.675, 0.325]])
    weighted = average_probabilities([softmax(LOGITS_A), softmax(LOGITS_B)], weights=[3, 1])
    np.testing.assert_allclose(weighted[0], [0.75 * 0.9 + 0.25 * 0.3, 0.75 * 0.1 + 0.25 * 0.7])
    np.testing.assert_allclose(softmax(ensemble_logits([LOGITS_A, LOGITS_B])), probs, rtol=1e-6)
    with pytest.raises(ValueError):
        average_probabilities([probs, probs], weights=[1, -1])


def _fake_run(path, logits, labels, val_logits, val_labels, framework="torch"):
    path.mkdir(parents=True)
    data = {"class_names": ["a", "b"], "num_classes": 2, "mean": 0.1307, "std": 0.3081, "image_size": 28,
            "in_channels": 1, "val_size": 2, "split_seed": 0}
    raw = {"kind": "train", "framework": framework, "dataset": "mnist", "arch": "simple", "params": 100, "data": data,
           "train": {}}
    runs.write_config(path, RunConfig.from_dict(raw, path))
    runs.save_predictions(path / runs.PREDICTIONS, logits, labels)
    runs.save_predictions(path / runs.VAL_PREDICTIONS, val_logits, val_labels)
    return path


def test_ensemble_runs_uniform_and_weighted(tmp_path):
    # On validation A is right on 2 of 2 images, B on 1 of 2: weights 2/3 and 1/3.
    val_a, val_b = np.log([[0.9, 0.1], [0.2, 0.8]]), np.log([[0.9, 0.1], [0.7, 0.3]])
    a = _fake_run(tmp_path / "a", LOGITS_A, LABELS, val_a, np.array([0, 1]))
    b = _fake_run(tmp_path / "b", LOGITS_B, LABELS, val_b, np.array([0, 1]), framework="keras")

    result = ensemble_runs([a, b], out=tmp_path / "ens")
    assert result["accuracy"] == pytest.approx(1.0)
    assert [m["test_accuracy"] for m in result["members"]] == [0.75, 0.5]
    saved_logits, saved_labels = runs.load_predictions(tmp_path / "ens" / runs.PREDICTIONS)
    np.testing.assert_allclose(softmax(saved_logits)[1], [0.275, 0.725], rtol=1e-5)
    np.testing.assert_array_equal(saved_labels, LABELS)
    config = runs.read_config(tmp_path / "ens")
    assert config.kind == "ensemble" and [m.framework for m in config.members] == ["torch", "keras"]
    assert json.loads((tmp_path / "ens" / runs.METRICS).read_text())["accuracy"] == pytest.approx(1.0)

    weighted = ensemble_runs([a, b], weighted=True, out=tmp_path / "ensw")
    assert [m["weight"] for m in weighted["members"]] == pytest.approx([2 / 3, 1 / 3])
    expected = average_probabilities([softmax(LOGITS_A), softmax(LOGITS_B)], weights=[2, 1])
    np.testing.assert_allclose(softmax(runs.load_predictions(tmp_path / "ensw" / runs.PREDICTIONS)[0]), expected,
                               rtol=1e-5)


def test_ensemble_refuses_runs_with_different_test_labels(tmp_path):
    val = np.log([[0.9, 0.1]])
    a = _fake_run(tmp_path / "a", LOGITS_A, LABELS, val, np.array([0]))
    b = _fake_run(tmp_path / "b", LOGITS_B, np.array([1, 1, 1, 0]), val, np.array([0]))
    with pytest.raises(UserError, match="different test sets"):
        ensemble_runs([a, b], out=tmp_path / "ens")
    with pytest.raises(UserError, match="at least two"):
        ensemble_runs([a], out=tmp_path / "ens")


def test_cli_ensemble_of_a_real_run_with_itself(trained_run, tmp_path, capsys):
    """Two copies of one run: the ensemble's accuracy equals the member's, via the CLI."""
    from mnistlab.cli import main

    rc = main(["ensemble", str(trained_run), str(trained_run), "--weighted", "--out", str(tmp_path / "e"), "--json"])
    result = json.loads(capsys.readouterr().out)
    member = json.loads((trained_run / runs.METRICS).read_text())["accuracy"]
    assert rc == 0 and result["accuracy"] == pytest.approx(member)
    assert main(["ensemble", str(trained_run), str(tmp_path / "missing"), "--out", str(tmp_path / "f")]) == 2


def _perturbed_copy(trained_run, path, scale: float, data_dir):
    """A copy of ``trained_run`` whose last layer got Gaussian noise of ``scale``, evaluated: another member."""
    import shutil

    import torch

    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.frameworks.pytorch import load_model

    shutil.copytree(trained_run, path)
    model, _ = load_model(path)
    with torch.no_grad():
        torch.manual_seed(0)
        model.head[-1].weight.add_(torch.randn_like(model.head[-1].weight) * scale)
    runs.save_weights(path, model)
    evaluate_run(path, data_dir=str(data_dir))
    return path


def _test_images(data_dir, n=300):
    from mnistlab.data.datasets import load_test_split

    x, _ = load_test_split("mnist", data_dir, purpose="compare an ensemble's predictor with its saved logits")
    return x[:n].numpy()


def test_ensemble_directory_predicts_like_its_saved_logits(trained_run, tmp_path, data_dir, capsys):
    """inference.predictor on an ensemble: the members' weighted averaged probabilities, as log-probabilities."""
    from PIL import Image

    from mnistlab.cli import main
    from mnistlab.frameworks.inference import predictor

    other = _perturbed_copy(trained_run, tmp_path / "other", 0.5, data_dir)  # a member that disagrees a little
    ensemble = ensemble_runs([trained_run, other], weighted=True, out=tmp_path / "ens")

    x = _test_images(data_dir)
    saved, _ = runs.load_predictions(tmp_path / "ens" / runs.PREDICTIONS)
    logits = predictor(tmp_path / "ens")(x)
    members = [predictor(d)(x) for d in (trained_run, other)]
    assert not np.allclose(members[0], members[1], atol=1e-3)  # the members do differ
    np.testing.assert_allclose(logits, saved[:300], atol=1e-4)
    np.testing.assert_allclose(np.exp(logits).sum(1), 1, atol=1e-5)  # log-probabilities
    assert sum(m["weight"] for m in ensemble["members"]) == pytest.approx(1)

    path = tmp_path / "digit.png"
    Image.fromarray(255 - x[0]).save(path)
    assert main(["predict", str(tmp_path / "ens"), str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["digit"] == int(np.argmax(saved[0]))


def test_a_selected_ensemble_is_served_with_its_temperatures_and_without_its_unused_members(
        trained_run, tmp_path, data_dir, capsys):
    """Caruana gives a broken member weight 0; the directory then predicts its saved logits without that member."""
    import shutil

    from mnistlab.cli import main
    from mnistlab.frameworks.inference import predictor

    other = _perturbed_copy(trained_run, tmp_path / "other", 0.5, data_dir)
    broken = _perturbed_copy(trained_run, tmp_path / "broken", 20.0, data_dir)  # about chance level
    rc = main(["ensemble", str(trained_run), str(other), str(broken), "--temperature", "--out", str(tmp_path / "ens"),
               "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and result["selection"]["method"] == "caruana"  # the command's default
    weights = [m["weight"] for m in result["members"]]
    assert weights[2] == 0 and weights[0] > 0 and result["members"][2]["test_accuracy"] < 0.5
    assert any(abs(m["temperature"] - 1) > 0.01 for m in result["members"])

    shutil.rmtree(broken)  # not needed any more: a member of weight 0 is never loaded
    saved, _ = runs.load_predictions(tmp_path / "ens" / runs.PREDICTIONS)
    np.testing.assert_allclose(predictor(tmp_path / "ens")(_test_images(data_dir)), saved[:300], atol=1e-4)
