"""ONNX files in a run directory are reused by bench and the INT8 export only while they match their export."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from mnistlab.export import INT8_FILE, INT8_REPORT, ONNX_FILE, ONNX_REPORT, export_path

pytest.importorskip("onnxruntime")
pytest_plugins = ["deploy_fixtures"]


@pytest.fixture
def run(exported_run, tmp_path):
    out = tmp_path / "simple"
    shutil.copytree(exported_run, out)
    return out


def test_exports_record_their_hashes(run):
    from mnistlab.export.onnx_export import file_sha256, reusable_export

    for name, report in ((ONNX_FILE, ONNX_REPORT), (INT8_FILE, INT8_REPORT)):
        recorded = json.loads(export_path(run, report).read_text())
        assert recorded["sha256"] == file_sha256(export_path(run, name))
        assert reusable_export(run, name, report)


def test_changed_onnx_file_is_exported_again_for_int8(run, data_dir, caplog):
    from mnistlab.export.onnx_export import file_sha256
    from mnistlab.export.quantize import export_int8

    onnx_path = export_path(run, ONNX_FILE)
    # Swap in the INT8 graph: a valid ONNX file, just not the one the report describes.
    shutil.copy(export_path(run, INT8_FILE), onnx_path)
    with caplog.at_level(logging.WARNING):
        export_int8(run, data_dir=str(data_dir), calibration_size=100, seconds=0.01)
    assert "does not match the SHA-256 recorded" in caplog.text
    new = file_sha256(onnx_path)  # exported again: a new file, recorded again
    assert new != file_sha256(export_path(run, INT8_FILE))
    assert json.loads(export_path(run, ONNX_REPORT).read_text())["sha256"] == new


def test_bench_without_export_skips_a_tampered_file(run):
    from mnistlab.export.bench import bench_run

    with open(export_path(run, INT8_FILE), "ab") as fh:
        fh.write(b"\0")
    result = bench_run(run, quick=True, export=False, threads=1, paths=("onnxruntime", "int8"))
    assert "int8" in result["skipped"] and "not the recorded export" in result["skipped"]["int8"]
    assert "onnxruntime" in result["paths"]


def test_exports_from_older_weights_are_not_reused(run):
    from mnistlab.export.onnx_export import reusable_export

    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")  # as after 'train --resume' improved the model
    assert not reusable_export(run, ONNX_FILE, ONNX_REPORT)
