"""Pruning and the inference benchmark (mixed-precision training is tested in test_training.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from mnistlab import cli
from mnistlab.export import BENCH_PATHS
from mnistlab.frameworks.pytorch import load_model

pytest.importorskip("onnxruntime")  # the deploy extra
pytest_plugins = ["deploy_fixtures"]  # session fixtures shared with the other deploy tests


@pytest.mark.slow  # fine-tunes twice
def test_prune_reaches_requested_sparsity_and_makes_runs(deploy_run, tmp_path, data_dir):
    from mnistlab.export.onnx_export import export_onnx
    from mnistlab.export.prune import PLOT, prune_run, sparsity

    run = tmp_path / "run"
    shutil.copytree(deploy_run, run)
    rows = prune_run(run, [0.5, 0.8], finetune_epochs=1, train_subset=500, data_dir=str(data_dir))
    assert [r["sparsity_target"] for r in rows] == [0.0, 0.5, 0.8]
    for row in rows[1:]:
        assert row["sparsity_reached"] == pytest.approx(row["sparsity_target"], abs=1e-3)
        assert row["val_acc"] >= row["val_acc_pruned"]  # fine-tuning keeps the best validation epoch
        model, config = load_model(run / row["run_dir"])  # a run directory every command accepts
        assert sparsity(model)[0] == pytest.approx(row["sparsity_target"], abs=1e-3)
        assert config.pruning["sparsity_target"] == row["sparsity_target"]
    assert rows[1]["test_acc"] > 0.9  # half the weights of the fixture model cost little
    assert rows[2]["weights_bytes_zlib"] < rows[0]["weights_bytes_zlib"] / 2
    assert (run / "prune" / "prune.csv").read_text().count("\n") == 4  # header + 3 rows
    assert (run / PLOT).stat().st_size > 10_000
    assert export_onnx(run / rows[2]["run_dir"], data_dir=str(data_dir), threads=1)["passed"]


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "half"])
def test_sparsity_outside_unit_interval_is_a_user_error(deploy_run, value, capsys):
    assert cli.main(["prune", str(deploy_run), "--sparsity", f"0.5,{value}"]) == 2
    assert "--sparsity" in capsys.readouterr().err


def test_bench_json_has_documented_keys(exported_run, capsys):
    assert cli.main(["bench", str(exported_run), "--quick", "--json", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"threads", "conditions", "paths", "file_sizes", "skipped", "best"} <= set(result)
    assert result["threads"] == 1 and result["skipped"] == {}
    assert set(result["paths"]) == set(BENCH_PATHS)
    for row in result["paths"].values():
        assert {"batch1_p50_ms", "batch1_p99_ms", "throughput_256", "throughput_1024"} <= set(row)
        assert 0 < row["batch1_p50_ms"] <= row["batch1_p99_ms"] and row["throughput_256"] > 0
    assert set(result["file_sizes"]) == {"model.safetensors", "export/model.onnx", "export/model.int8.onnx"}
    assert result["file_sizes"]["export/model.int8.onnx"] < result["file_sizes"]["export/model.onnx"]
    assert (exported_run / "bench.json").is_file()


def test_bench_without_export_skips_missing_paths(deploy_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(deploy_run, run)
    code = cli.main(["bench", str(run), "--quick", "--json", "--no-export", "--paths", "torch_eager,onnxruntime"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["paths"]) == ["torch_eager"]
    assert "mnistlab export" in result["skipped"]["onnxruntime"]
    assert not (run / "export" / "model.onnx").exists()
