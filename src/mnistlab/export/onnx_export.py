"""Export a PyTorch run to ONNX, then check the file against PyTorch.

From a trained PyTorch run (``mnistlab export``); the checks below take a few seconds::

    from mnistlab.export.onnx_export import export_onnx

    report = export_onnx("runs/simple")
    report["file"], report["checker"], report["passed"]     # ('export/model.onnx', 'passed', True)
    report["max_abs_diff"], report["prediction_mismatches"]  # (2.86e-06, 0)

The ONNX graph takes ``float32[N, 1, 28, 28]`` pixels in [0, 1] (named ``images``) and returns
``logits`` (``float32[N, classes]``): the dataset normalisation is folded into the graph, and
``export/preprocess.py`` beside it (:mod:`mnistlab.export.preprocess_file`) turns any picture into
that input as ``mnistlab predict`` does, so a client needs nothing from mnistlab. Class names,
the preprocessing and provenance sit in the model's metadata
(``onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map``).

The export checks itself: ``onnx.checker``, the largest |Δ logit| against PyTorch on the first
1,000 test images (must be ≤ 1e-4) and test accuracy in ONNX Runtime vs PyTorch (must agree to
within one image in 10,000). The figures go to ``<run_dir>/export/onnx.json``, with the file's
SHA-256 and that of the weights it came from: :func:`reusable_export` lets ``bench`` and the INT8
export reuse a file only while both still match (else they export it again).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistlab import runs
from mnistlab.data.datasets import load_test_split
from mnistlab.errors import UserError
from mnistlab.export import ONNX_FILE, ONNX_REPORT, export_path, require_deploy_extra
from mnistlab.export.onnx_runtime import (  # noqa: F401 - the ONNX helpers, importable from the exporter too
    INPUT_NAME,
    OUTPUT_NAME,
    file_sha256,
    metadata,
    ort_logits,
    reusable_export,
    session,
    unit_images,
)
from mnistlab.export.preprocess_file import PREPROCESS_FILE, write_preprocess
from mnistlab.fileio import write_bytes, write_json
from mnistlab.frameworks.pytorch import load_model, normalize_images, torch_logits
from mnistlab.maths.metrics import accuracy
from mnistlab.runconfig import RunConfig

MAX_ABS_DIFF = 1e-4
N_COMPARE = 1000


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)``: takes pixels in [0, 1], so clients skip the normalisation."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@contextlib.contextmanager
def _quiet(logger: str):
    """Silence a library logger for the duration (torch.onnx warns that torchvision is absent)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def strip_trace(proto) -> None:
    """Drop the exporter's per-node debugging metadata (stack traces with local paths: ~5% of the file)."""
    for item in [*proto.graph.node, *proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        del item.metadata_props[:]
        item.doc_string = ""


def to_onnx_proto(model: nn.Module, config: RunConfig, run_dir: Path):
    """The ONNX ModelProto of a run's model, normalisation folded in, with a dynamic batch dimension."""
    import onnx

    data = config.data
    wrapped = NormalizedModel(model, data.mean, data.std).eval()
    example = torch.rand(2, data.in_channels, data.image_size, data.image_size)
    # The dynamo exporter (torch's default) gives a clean, optimised graph; dynamic_shapes marks
    # dim 0 symbolic. Weights are kept inside the proto so the result is one self-contained file.
    with warnings.catch_warnings(), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are for torch developers
        program = torch.onnx.export(wrapped, (example,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                    external_data=False, verbose=False)
    proto = program.model_proto
    strip_trace(proto)
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    proto.doc_string = f"mnistlab {config.arch} classifier for {config.dataset}"
    onnx.helper.set_model_props(proto, metadata(run_dir, config, f"torch {torch.__version__}"))
    onnx.checker.check_model(proto, full_check=True)
    return proto


@runs.writes_run
def export_onnx(run_dir: str | Path, *, data_dir: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Write ``export/model.onnx`` and ``export/onnx.json`` (the check figures) for a PyTorch run."""
    require_deploy_extra()
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1")
    run_dir = Path(run_dir)
    model, config = load_model(run_dir)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    proto = to_onnx_proto(model, config, run_dir)
    path = export_path(run_dir, ONNX_FILE)
    write_bytes(path, proto.SerializeToString())
    preprocess = write_preprocess(export_path(run_dir, PREPROCESS_FILE), config)

    # The self-check: the exported file must agree with PyTorch on the same test images (nothing is chosen).
    test_x, test_y = load_test_split(config.dataset, data_dir, purpose="ONNX export self-check against PyTorch")
    labels = test_y.numpy()
    torch_out = torch_logits(model, normalize_images(test_x, config.data)).numpy()
    onnx_out = ort_logits(session(path, threads), test_x.numpy())
    max_diff = float(np.abs(onnx_out[:N_COMPARE] - torch_out[:N_COMPARE]).max())
    torch_acc, onnx_acc = accuracy(torch_out, labels), accuracy(onnx_out, labels)
    mismatches = int((onnx_out.argmax(1) != torch_out.argmax(1)).sum())
    report = {
        "file": str(path.relative_to(run_dir)),
        "bytes": path.stat().st_size,
        "preprocess": str(preprocess.relative_to(run_dir)),
        "sha256": hashlib.sha256(proto.SerializeToString()).hexdigest(),  # what reusable_export checks
        "weights_sha256": file_sha256(runs.weights_path(run_dir, config)),
        "weights_bytes": runs.weights_path(run_dir, config).stat().st_size,
        "opset": int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))),
        "checker": "passed",
        "reference": "PyTorch", "runtime": "ONNX Runtime", "split": "test",
        "compared_images": min(N_COMPARE, len(labels)),
        "max_abs_diff": max_diff,
        "max_abs_diff_limit": MAX_ABS_DIFF,
        "reference_accuracy": torch_acc,
        "export_accuracy": onnx_acc,
        "test_images": len(labels),
        "prediction_mismatches": mismatches,
        "agreement": 1 - mismatches / len(labels),
        "threads": threads,
    }
    report["passed"] = bool(max_diff <= MAX_ABS_DIFF and abs(onnx_acc - torch_acc) * len(labels) <= 1)
    write_json(export_path(run_dir, ONNX_REPORT), report)
    return report
