"""The main job on a smoke budget: every model trained, evaluated, compared and reported."""

import json

import pytest

from mnistlab import frameworks
from mnistlab.cli import main
from mnistlab.experiments.quickstart import quickstart

SMOKE_FLOOR = 0.5


@pytest.mark.slow  # trains two models and writes the report
def test_smoke_quickstart_trains_evaluates_and_reports(tmp_path, data_dir):
    models = ("simple", "keras:simple") if frameworks.available("keras") else ("simple",)
    result = quickstart(tmp_path / "qs", smoke=True, progress=False, models=models)
    rows = result["models"]
    assert [r["framework"] for r in rows[: len(models)]] == [m.rpartition(":")[0] or "torch" for m in models]
    for row in rows:
        # One epoch on 2,000 images reached 0.57-0.70 validation accuracy over seeds 0-2 for both
        # frameworks (0.70 and 0.62 at seed 0); chance is 0.1. Below SMOKE_FLOOR something is broken.
        assert SMOKE_FLOOR <= row["test_accuracy"] <= 1, row
        assert (tmp_path / "qs").joinpath(row["run_dir"].rsplit("/", 1)[-1], "metrics.json").is_file()
    html = (tmp_path / "qs" / "report.html").read_text()
    assert "simple" in html and "<img" in html
    if frameworks.available("keras"):  # the seed's cross-framework ensemble is the last row
        assert rows[-1]["framework"] == "torch+keras"


@pytest.mark.slow  # trains one model and writes the report
def test_quickstart_json_and_no_overwrite(tmp_path, capsys, data_dir):
    out = tmp_path / "qs"
    args = ["quickstart", "--smoke", "--quiet", "--models", "simple", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["report"].endswith("report.html") and [m["arch"] for m in printed["models"]] == ["simple"]
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err


def test_quickstart_unknown_model_is_a_usage_error(tmp_path, capsys, data_dir):
    assert main(["quickstart", "--smoke", "--models", "simple,vgg", "--out", str(tmp_path / "q")]) == 2
    assert "vgg" in capsys.readouterr().err
