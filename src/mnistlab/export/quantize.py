"""INT8 post-training static quantization with ONNX Runtime, calibrated on the validation split.

Calibration, the test split in both precisions and a speed check take several seconds::

    from mnistlab.export.quantize import export_int8

    report = export_int8("runs/simple")      # exports model.onnx first when it is missing
    report["accuracy_delta_points"], report["size_ratio"]      # (-0.01, 0.27)

The fp32 ``export/model.onnx`` (exported first if missing) goes through ``quant_pre_process``
(shape inference and graph fusions, so Conv+ReLU are quantized as one op) and then
``quantize_static`` in QDQ format: per-channel int8 weights, uint8 activations (the fast U8S8
kernels on x86 with VNNI), scales calibrated on validation images only — the test split is used
once, afterwards, to report the accuracy change. Writes ``export/model.int8.onnx`` and
``export/int8.json`` (accuracy change, sizes, speed).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import frameworks, runs
from mnistlab.data.datasets import load_test_split, load_train_val
from mnistlab.errors import UserError
from mnistlab.export import (
    CALIBRATION_METHODS,
    INT8_FILE,
    INT8_REPORT,
    ONNX_FILE,
    ONNX_REPORT,
    export_path,
    require_deploy_extra,
)
from mnistlab.export.onnx_runtime import file_sha256, ort_logits, reusable_export, session, unit_images
from mnistlab.fileio import write_json, write_with
from mnistlab.maths.metrics import accuracy
from mnistlab.timing import batch1_latency, throughput

ACCURACY_TARGET_POINTS = 0.1  # the bound on the test accuracy lost to INT8
SIZE_RATIO_TARGET = 0.25  # INT8 file size / fp32 file size
CALIBRATION_SIZE = 1000  # validation images that calibrate the activation ranges


def calibration_reader(images: np.ndarray, input_name: str, batch_size: int = 100):
    """A ``CalibrationDataReader`` over uint8 images (pass validation images, never test)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            x = unit_images(images)
            self._batches = iter([{input_name: x[i: i + batch_size]} for i in range(0, len(x), batch_size)])

        def get_next(self):
            return next(self._batches, None)

    return _Reader()


def first_conv(path: Path) -> list[str]:
    """The name of the graph's first Conv (the stem), kept in float32 by ``quantize_file``.

    Quantizing the 1-channel stem conv cost dense and attention 10-11 test points after a one-epoch
    run (measured node by node: every other node alone cost under 0.1); the cause inside ONNX
    Runtime's per-channel path is not yet pinned down (per-tensor weights lose only 2 points).
    The stem is a few percent of the multiply-adds, so keeping it float costs little speed.
    """
    import onnx

    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    return convs[:1]


def quantize_file(fp32_path: Path, out_path: Path, calib_images: np.ndarray, method: str = "minmax") -> None:
    """Quantize an fp32 ONNX file to a QDQ int8 file at ``out_path`` (atomically)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise UserError(f"unknown calibration {method!r}; choose one of: {', '.join(CALIBRATION_METHODS)}")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="mnistlab-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        input_name = session(pre, 1).get_inputs()[0].name
        keep_float = first_conv(pre)

        def write(dst: Path) -> None:
            quantize_static(str(pre), str(dst), calibration_reader(calib_images, input_name),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method], nodes_to_exclude=keep_float)

        with contextlib.redirect_stdout(sys.stderr):  # the calibrators print progress; stdout is for results
            write_with(out_path, write)


@runs.writes_run
def export_int8(run_dir: str | Path, *, data_dir: str | None = None, threads: int | None = None,
                calibration_size: int = CALIBRATION_SIZE, method: str = "minmax", seconds: float = 1.0) -> dict[str, Any]:
    """Write ``export/model.int8.onnx`` and ``export/int8.json`` for a run whose framework exports ONNX."""
    require_deploy_extra()
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    threads = threads or torch.get_num_threads()
    if calibration_size < 1:
        raise UserError("--calibration-size must be at least 1")
    fp32_path = export_path(run_dir, ONNX_FILE)
    if not reusable_export(run_dir, ONNX_FILE, ONNX_REPORT):  # missing, changed, or from older weights
        frameworks.of_run(config, run_dir).export_module().export_onnx(run_dir, data_dir=data_dir, threads=threads)
    data = config.data
    val = load_train_val(config.dataset, val_size=data.val_size, seed=data.split_seed, data_dir=data_dir)
    # The validation split is stratified and shuffled, so its first images cover every class.
    calib = val.val_x[:calibration_size].numpy()
    int8_path = export_path(run_dir, INT8_FILE)
    quantize_file(fp32_path, int8_path, calib, method)

    # The accuracy cost of INT8 is reported, never used to pick the calibration (validation does that).
    test_x, test_y = load_test_split(config.dataset, data_dir,
                                     purpose="INT8 export: report its test accuracy change")
    images, labels = test_x.numpy(), test_y.numpy()
    fp32_sess, int8_sess = session(fp32_path, threads), session(int8_path, threads)
    fp32_out, int8_out = ort_logits(fp32_sess, images), ort_logits(int8_sess, images)
    fp32_acc, int8_acc = accuracy(fp32_out, labels), accuracy(int8_out, labels)
    x256 = unit_images(images[:256])
    speed = {}
    for name, sess in (("fp32", fp32_sess), ("int8", int8_sess)):
        run = lambda x, s=sess: s.run(None, {s.get_inputs()[0].name: x})
        speed[f"{name}_batch1_p50_ms"] = batch1_latency(run, x256[:1], seconds)["p50_ms"]
        speed[f"{name}_throughput_256"] = throughput(run, x256, seconds)
    report = {
        "file": str(int8_path.relative_to(run_dir)),
        "sha256": file_sha256(int8_path),  # bench reuses the file only while this matches
        "weights_sha256": file_sha256(runs.weights_path(run_dir, config)),
        "format": "QDQ, per-channel int8 weights, uint8 activations, stem conv kept float32",
        "calibration": f"{method}, {len(calib)} validation images",
        "fp32_accuracy": fp32_acc,
        "int8_accuracy": int8_acc,
        "accuracy_delta_points": round(100 * (int8_acc - fp32_acc), 4),
        "accuracy_target_points": -ACCURACY_TARGET_POINTS,
        "size_ratio_target": SIZE_RATIO_TARGET,
        "prediction_agreement": float((fp32_out.argmax(1) == int8_out.argmax(1)).mean()),
        "test_images": len(labels),
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "size_ratio": round(int8_path.stat().st_size / fp32_path.stat().st_size, 4),
        **speed,
        "speedup_256": round(speed["int8_throughput_256"] / speed["fp32_throughput_256"], 3),
        "threads": threads,
    }
    report["meets_targets"] = bool(report["accuracy_delta_points"] >= -ACCURACY_TARGET_POINTS
                                   and report["size_ratio"] <= SIZE_RATIO_TARGET)
    write_json(export_path(run_dir, INT8_REPORT), report)
    return report
