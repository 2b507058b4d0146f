"""Deployment: ONNX export, INT8 quantization, magnitude pruning and inference benchmarks.

Each step starts from a trained run and measures what it made, so each takes from seconds
(export) to minutes (pruning fine-tunes); ``mnistlab export [--format int8]``, ``mnistlab prune``
and ``mnistlab bench`` call them. A Keras run exports through
:mod:`mnistlab.frameworks.keras.export`, then quantizes and benchmarks its ONNX file here::

    from mnistlab.export.bench import bench_run
    from mnistlab.export.onnx_export import export_onnx
    from mnistlab.export.prune import prune_run
    from mnistlab.export.quantize import export_int8

    export_onnx("runs/simple")["passed"]                    # True: export/model.onnx
    export_int8("runs/simple")["accuracy_delta_points"]     # -0.01: export/model.int8.onnx
    prune_run("runs/simple", [0.5, 0.9])                    # prune/sparsity-0.5/, prune/sparsity-0.9/
    bench_run("runs/simple", quick=True)["paths"]           # latency and throughput of each path

Everything here writes under the run directory: ``export/`` (``model.onnx``,
``model.int8.onnx``, ``onnx.json``, ``int8.json``), ``bench.json`` and ``prune/``.
ONNX Runtime and onnx come with the ``deploy`` extra: ``pip install 'mnistlab[deploy]'``.
"""

from __future__ import annotations

from pathlib import Path

from mnistlab.errors import UserError

EXPORT_DIR = "export"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
ONNX_REPORT = "onnx.json"
INT8_REPORT = "int8.json"
BENCH_REPORT = "bench.json"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
BENCH_PATHS = ("torch_eager", "torch_channels_last", "onnxruntime", "int8")


def export_path(run_dir: str | Path, name: str) -> Path:
    """``<run_dir>/export/<name>``."""
    return Path(run_dir) / EXPORT_DIR / name


def require_deploy_extra() -> None:
    """Fail with the install command when onnx or onnxruntime is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{exc.name} is not installed; run: pip install 'mnistlab[deploy]'") from None
