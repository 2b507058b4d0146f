"""Metrics against hand-computed cases and against scikit-learn."""

import numpy as np
import pytest

from mnistlab.maths import metrics as M


def test_accuracy_and_confusion_by_hand():
    logits = np.array([[3.0, 0, 0], [0, 2.0, 0], [0, 3.0, 0], [0, 0, 1.0]])
    labels = np.array([0, 1, 0, 2])
    assert M.accuracy(logits, labels) == 0.75
    cm = M.confusion_matrix(logits, labels, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert M.top_confusions(cm) == [{"true": 0, "predicted": 1, "count": 1, "rate": 0.5}]


def test_nll_matches_log_softmax():
    logits = np.array([[1.0, 2.0], [0.5, -0.5]])
    labels = np.array([1, 0])
    expected = -np.mean([np.log(np.exp(2) / (np.exp(1) + np.exp(2))), np.log(np.exp(0.5) / (np.exp(0.5) + np.exp(-0.5)))])
    assert M.nll(logits, labels) == pytest.approx(expected)


def test_ece_hand_computed():
    # two samples, both predicted class 0 with confidence 0.9 (one right, one wrong):
    # one bin, |accuracy 0.5 − confidence 0.9| = 0.4
    p = 0.9
    logit = np.log(p / (1 - p))
    logits = np.array([[logit, 0.0], [logit, 0.0]])
    labels = np.array([0, 1])
    assert M.ece(logits, labels) == pytest.approx(0.4)


def test_ece_zero_when_confidence_equals_accuracy():
    # confidence 0.75 everywhere, 3 of 4 right
    logit = np.log(3.0)
    logits = np.tile([logit, 0.0], (4, 1))
    assert M.ece(logits, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-9)


def test_high_confidence_errors_counts_only_confident_wrong():
    logits = np.array([[5.0, 0], [0.1, 0], [5.0, 0]])
    labels = np.array([1, 1, 0])
    assert M.high_confidence_errors(logits, labels, 0.9) == 1


def test_compute_metrics_keys_and_per_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    logits = rng.normal(size=(500, 10))
    logits[np.arange(500), labels] += 2.0
    m = M.compute_metrics(logits, labels, [str(i) for i in range(10)])
    for key in ("accuracy", "n_samples", "per_class", "macro_f1", "confusion_matrix", "top_confusions",
                "high_confidence_errors", "nll", "ece"):
        assert key in m
    assert 0 < m["accuracy"] < 1
    assert np.array(m["confusion_matrix"]).sum() == 500
    assert set(m["per_class"][0]) >= {"accuracy", "precision", "recall", "f1"}
    from sklearn.metrics import f1_score
    assert m["macro_f1"] == pytest.approx(f1_score(labels, logits.argmax(1), average="macro"))


def test_softmax_rows_sum_to_one_and_are_stable():
    p = M.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p.sum(1), 1) and np.isfinite(p).all()
