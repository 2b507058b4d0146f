"""The quickstart's wall-time budget: the planner's arithmetic, the glue that measures and records
the plan, the one real measurement, and the CLI's answers to impossible budgets and data sets."""

from __future__ import annotations

import json

import pytest

from mnistlab import frameworks, runs
from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.experiments import quickstart as qs
from mnistlab.experiments.budget import RESERVE, ModelCost, check_budget, epoch_seconds, plan_epochs
from mnistlab.training.throughput import Speed, measure

# Seconds per epoch measured on the 2-core Xeon and today's EPYC (deeper ~82-90 s, resnet ~45-50 s).
SLOW = [ModelCost("simple", 8, 16, 12), ModelCost("deeper", 12, 90, 37), ModelCost("resnet", 12, 50, 23),
        ModelCost("keras:simple", 8, 26, 9)]


def test_a_fast_machine_keeps_every_default_epoch():
    plan = plan_epochs(SLOW, budget_s=3600)
    assert plan.epochs == {"simple": 8, "deeper": 12, "resnet": 12, "keras:simple": 8} and plan.fits


def test_a_slow_machine_gets_fewer_epochs_that_fit_the_budget():
    plan = plan_epochs(SLOW, budget_s=900, spent_s=45)
    assert plan.fits and plan.planned_s <= 900 * (1 - RESERVE)
    assert all(1 <= plan.epochs[c.name] < c.default_epochs for c in SLOW)
    # One more epoch of any model would overrun: the planner leaves no whole epoch unused.
    slack = 900 * (1 - RESERVE) - plan.planned_s
    assert all(c.epoch_s > slack for c in SLOW)
    # The cut is shared: no model keeps more than twice the share of its default that another keeps.
    shares = [plan.epochs[c.name] / c.default_epochs for c in SLOW]
    assert max(shares) <= 2 * min(shares)
    assert plan.line().startswith("budget 15 min: simple ") and "deeper" in plan.line()
    assert plan.record() == {"budget_s": 900, "planned_s": round(plan.planned_s, 1), "epochs": plan.epochs}


def test_when_even_one_epoch_each_does_not_fit_the_plan_says_so():
    plan = plan_epochs(SLOW, budget_s=120, spent_s=30)
    assert not plan.fits and set(plan.epochs.values()) == {1}


@pytest.mark.parametrize("minutes", [0, -5, 0.5, float("nan")])
def test_an_absurd_budget_is_a_user_error(minutes):
    with pytest.raises(UserError, match="--budget"):
        check_budget(minutes)


def test_cli_refuses_an_absurd_budget_and_an_unknown_data_set(tmp_path, capsys):
    assert main(["quickstart", "--budget", "0.2", "--out", str(tmp_path / "q")]) == 2
    assert "--budget" in capsys.readouterr().err and not (tmp_path / "q").exists()
    with pytest.raises(SystemExit) as exc:  # argparse: the choices come from data/registry.py
        main(["quickstart", "--dataset", "cifar10", "--out", str(tmp_path / "q")])
    assert exc.value.code == 2 and "fashion-mnist" in capsys.readouterr().err


def test_an_existing_run_is_refused_before_any_measuring(tmp_path, capsys, data_dir, monkeypatch):
    (tmp_path / "q" / "simple").mkdir(parents=True)
    (tmp_path / "q" / "simple" / "config.json").write_text("{}")
    monkeypatch.setattr(qs, "plan_budget", lambda *a, **k: pytest.fail("measured before checking --out"))
    assert main(["quickstart", "--models", "simple", "--out", str(tmp_path / "q")]) == 2
    assert "--force" in capsys.readouterr().err


def test_measure_times_real_steps_of_each_framework_builder(data_dir):
    data = load_train_val("mnist", val_size=200, train_subset=300)
    speed = measure(TrainConfig(arch="simple", batch_size=32), data, build=frameworks.get("torch").build, steps=3,
                    seconds=60)
    assert speed.steps == 3 and speed.train_per_s > 0 and speed.eval_per_s > 0 and speed.startup_s > 0


def test_quickstart_plans_records_and_reports_the_budget(tmp_path, data_dir, monkeypatch, capsys):
    """The budget path end to end, with the measurement faked: a slow machine's speed and a 15-minute budget."""
    speeds = {"simple": Speed(3500, 10000, 1.0, 50), "deeper": Speed(620, 2000, 2.0, 40)}
    monkeypatch.setattr("mnistlab.training.throughput.measure",
                        lambda cfg, data, **_: speeds[cfg.arch])
    trained = []

    def fake_train(framework, cfg, run_dir, **kw):  # record what training was asked for, train nothing
        trained.append((cfg.arch, cfg.epochs, kw["config_extra"]))
        raise SystemExit("stop after planning")

    monkeypatch.setattr(frameworks.Framework, "train", fake_train)
    with pytest.raises(SystemExit):
        qs.quickstart(tmp_path / "q", budget_min=15, models=("simple", "deeper"))
    (arch, epochs, extra), = trained
    plan = extra["budget"]
    assert arch == "simple" and epochs == plan["epochs"]["simple"] <= 8  # what training got is what was recorded
    assert 1 <= plan["epochs"]["deeper"] < 12 and plan["budget_s"] == 900  # 12 × 91 s would not fit
    assert plan["planned_s"] <= 900 * (1 - RESERVE)
    # deeper (55,000 training + 5,000 validation images at the faked speeds) dominates the plan
    assert plan["epochs"]["deeper"] * epoch_seconds(55000, 5000, 620, 2000) > plan["planned_s"] / 2
    err = capsys.readouterr().err
    assert f"budget 15 min: simple {epochs} epochs, deeper {plan['epochs']['deeper']}" in err


def test_the_plan_recorded_in_config_json_is_validated(tmp_path, data_dir):
    from mnistlab.training.trainer import train

    cfg = TrainConfig(arch="simple", epochs=1, train_subset=300, val_size=100, batch_size=64)
    budget = {"budget_s": 900.0, "planned_s": 850.0, "epochs": {"simple": 1, "keras:simple": 1}}
    train(cfg, tmp_path / "r", progress=False, config_extra={"budget": budget})
    assert runs.read_config(tmp_path / "r").budget == budget
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    for bad in ({"epochs": {"simple": "8"}}, {"surprise": 1}, {"budget_s": -1}):
        (tmp_path / "r" / "config.json").write_text(json.dumps({**config, "budget": bad}))
        with pytest.raises(UserError, match="budget"):
            runs.read_config(tmp_path / "r")


@pytest.mark.slow  # trains one model and writes the report
def test_smoke_quickstart_on_fashion_mnist(tmp_path, data_dir):
    result = qs.quickstart(tmp_path / "qs", smoke=True, progress=False, dataset="fashion-mnist", models=("simple",))
    row, = result["models"]
    assert result["dataset"] == "fashion-mnist" and result["budget"] is None
    assert runs.read_config(row["run_dir"]).dataset == "fashion-mnist"
    # One epoch on 2,000 Fashion-MNIST images: well above chance (0.1) when nothing is broken.
    assert row["test_accuracy"] >= 0.5
