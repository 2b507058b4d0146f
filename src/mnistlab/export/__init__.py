"""Deployment: ONNX export, INT8 quantization, magnitude pruning and inference benchmarks.

    >>> from mnistlab.export.onnx_export import export_onnx     # doctest: +SKIP
    >>> report = export_onnx("runs/simple-20261125-101500")    # doctest: +SKIP
    >>> report["max_abs_diff"] <= 1e-4                          # doctest: +SKIP
    True

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
