"""Mean ± std over seeds: the one function, and the three tables built on it (compare, ensemble-train,
transfer-curve) agreeing on one value (std undefined, "—") for a single seed."""

from __future__ import annotations

import doctest
import math

import pytest

from mnistlab.analysis.compare import accuracy_text as compare_text
from mnistlab.experiments.ensemble_train import _spread as ensemble_spread
from mnistlab.experiments.transfer_curve import markdown, summarise
from mnistlab.maths import spread as spread_module
from mnistlab.maths.spread import mean_std_text, spread


def test_three_values_give_the_sample_std():
    s = spread([0.90, 0.92, 0.97])
    assert s["mean"] == pytest.approx(0.93)
    # sum of squared deviations 0.0009 + 0.0001 + 0.0016 = 0.0026, over n - 1 = 2
    assert s["std"] == pytest.approx(math.sqrt(0.0013))
    assert (s["min"], s["max"], s["n"]) == (0.90, 0.97, 3)


def test_one_value_has_no_std():
    assert spread([0.5]) == {"mean": 0.5, "std": None, "min": 0.5, "max": 0.5, "n": 1}


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        spread([])


def test_text_shows_a_dash_for_an_undefined_std():
    assert mean_std_text(0.93, 0.0123) == "0.9300 ± 0.0123"
    assert mean_std_text(0.93, None) == "0.9300 ± —"
    assert mean_std_text(0.9312, 0.0012, digits=2, scale=100) == "93.12 ± 0.12"


def test_module_doctest():
    assert doctest.testmod(spread_module).failed == 0


def test_compare_group_of_one_run():
    assert compare_text({"accuracy_mean": 0.99, "accuracy_std": None}) == "0.9900 ± —"


def test_ensemble_spread_per_architecture():
    rows = [{"framework": "torch", "arch": "simple", "seed": s, "test_accuracy": a, "val_accuracy": a}
            for s, a in ((0, 0.90), (1, 0.92), (2, 0.97))]
    rows.append({"framework": "torch", "arch": "resnet", "seed": 0, "test_accuracy": 0.98, "val_accuracy": 0.97})
    simple, resnet = ensemble_spread(rows)
    assert simple["seeds"] == [0, 1, 2] and simple["test_accuracy"]["std"] == pytest.approx(math.sqrt(0.0013))
    assert resnet["test_accuracy"] == {"mean": 0.98, "std": None, "min": 0.98, "max": 0.98, "n": 1}


def test_transfer_summary_and_table_with_one_seed():
    rows = [{"subset": "100", "n_train": 100, "mode": "scratch", "seed": 0, "test_acc": 0.5, "val_acc": 0.4,
             "recipe": "all", "train_seconds": 1.0}]
    rows += [{"subset": "100", "n_train": 100, "mode": "finetune", "seed": s, "test_acc": a, "val_acc": 0.6,
              "recipe": "all", "train_seconds": 1.0} for s, a in ((0, 0.60), (1, 0.62))]
    summary = summarise(rows)
    assert [r["test_acc_std"] for r in summary] == [None, pytest.approx(math.sqrt(0.0002))]
    assert "| 100 | 50.00 ± — | 61.00 ± 1.41 |" in markdown(summary, ["scratch", "finetune"])
