"""Export a PyTorch run to ONNX, then check the file against PyTorch.

From a trained PyTorch run (``mnistlab export``); the checks below take a few seconds::

    from mnistlab.export.onnx_export import export_onnx

    report = export_onnx("runs/simple")
    report["file"], report["checker"], report["passed"]     # ('export/model.onnx', 'passed', True)
    report["max_abs_diff"], report["prediction_mismatches"]  # (2.86e-06, 0)

The ONNX graph takes ``float32[N, 1, 28, 28]`` pixels in [0, 1] (named ``images``) and returns
``logits`` (``float32[N, classes]``): the dataset normalisation is folded into the graph, so a
client needs nothing from mnistlab. Class names and provenance sit in the model's metadata
(``onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map``).

The export checks itself: ``onnx.checker``, the largest |Δ logit| against PyTorch on the first
1,000 test images (must be ≤ 1e-4) and test accuracy in ONNX Runtime vs PyTorch (must agree to
within one image in 10,000). The figures go to ``<run_dir>/export/onnx.json``, with the file's
SHA-256 and that of the weights it came from: :func:`reusable_export` lets ``bench`` and the INT8
export reuse a file only while both still match (else they export it again).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistlab import runs
from mnistlab.version import __version__
from mnistlab.data import registry
from mnistlab.data.datasets import load_test_split
from mnistlab.errors import UserError
from mnistlab.export import ONNX_FILE, ONNX_REPORT, export_path, require_deploy_extra
from mnistlab.fileio import read_json, write_bytes, write_json
from mnistlab.frameworks.pytorch import load_model, normalize_images, torch_logits
from mnistlab.maths.metrics import accuracy
from mnistlab.models import NUM_CLASSES
from mnistlab.runconfig import RunConfig

INPUT_NAME, OUTPUT_NAME = "images", "logits"
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


def unit_images(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 ``[N, 28, 28]`` → float32 ``[N, 1, 28, 28]`` in [0, 1], the ONNX model's input."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x


def session(path: str | Path | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session of a file (or of its bytes) with ``threads`` intra-op threads (default: all cores)."""
    require_deploy_extra()
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or os.cpu_count() or 1
    opts.inter_op_num_threads = 1  # the graphs are a single chain: nothing runs side by side
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def ort_logits(sess, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits of uint8 images through an ONNX Runtime session, in chunks."""
    x = unit_images(images)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i: i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, NUM_CLASSES), np.float32)


def _form(dataset: str) -> str:
    """What the input looks like, in words: "white digit on black", "light item of clothing on black"."""
    subject = registry.DATASETS[dataset].subject if dataset in registry.DATASETS else "object"
    return f"{'white' if subject == 'digit' else 'light'} {subject} on black, preprocessed like 'mnistlab predict'"


def metadata(run_dir: Path, config: RunConfig) -> dict[str, str]:
    """Strings stored in the ONNX file: what it classifies and where it came from."""
    env = config.environment
    return {
        "class_names": json.dumps(config.data.class_names),
        "dataset": config.dataset,
        "arch": config.arch,
        "input": f"{INPUT_NAME}: float32[N,{config.data.in_channels or 1},{config.data.image_size},"
                 f"{config.data.image_size}], "
                 f"pixels in [0,1], {_form(config.dataset)}; normalisation is inside the graph",
        "output": f"{OUTPUT_NAME}: float32[N,{config.data.num_classes}], unnormalised (softmax for probabilities)",
        "normalization": json.dumps({"mean": config.data.mean, "std": config.data.std}),
        "source_run": str(run_dir.resolve()),
        "run_created": config.created or "",
        "train_git_commit": str(env.get("git_commit") or ""),
        "exported": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "exporter": f"mnistlab {__version__}, torch {torch.__version__}",
    }


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
    onnx.helper.set_model_props(proto, metadata(run_dir, config))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _external_data(path: Path) -> bool:
    """Whether an ONNX file points at tensor data in other files (which loading it would read)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    # onnx's walk over every tensor (initializers and attributes) is private; initializers are the usual place.
    tensors = getattr(onnx.external_data_helper, "_get_all_tensors", lambda p: p.graph.initializer)(proto)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors)


def reusable_export(run_dir: str | Path, name: str, report_name: str) -> bool:
    """Whether ``export/<name>`` is the file this tool exported from the run's current weights.

    True only when ``export/<report_name>`` records the file's SHA-256 and the weights' SHA-256
    and both still match (and the file reads no external data). A file that exists but fails is
    reported on stderr; callers then export it again.
    """
    run_dir = Path(run_dir)
    path, report_path = export_path(run_dir, name), export_path(run_dir, report_name)
    if not path.is_file():
        return False
    try:
        report = read_json(report_path)
        recorded = (report["sha256"], report["weights_sha256"]) if isinstance(report, dict) else None
        matches = recorded == (file_sha256(path), file_sha256(run_dir / runs.WEIGHTS))
        ok = matches and not _external_data(path)
    except Exception:  # noqa: BLE001 - unreadable report or file, damaged protobuf: any doubt means export again
        ok = False
    if not ok:
        logging.getLogger(__name__).warning("%s does not match the SHA-256 recorded in %s at export time "
                                            "(or that of the run's weights); exporting it again", path, report_path)
    return ok


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

    # The self-check: the exported file must agree with PyTorch on the same test images (nothing is chosen).
    test_x, test_y = load_test_split(config.dataset, data_dir, purpose="ONNX export self-check against PyTorch")
    labels = test_y.numpy()
    torch_out = torch_logits(model, normalize_images(test_x, config.data)).numpy()
    onnx_out = ort_logits(session(path, threads), test_x.numpy())
    max_diff = float(np.abs(onnx_out[:N_COMPARE] - torch_out[:N_COMPARE]).max())
    torch_acc, onnx_acc = accuracy(torch_out, labels), accuracy(onnx_out, labels)
    report = {
        "file": str(path.relative_to(run_dir)),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(proto.SerializeToString()).hexdigest(),  # what reusable_export checks
        "weights_sha256": file_sha256(run_dir / runs.WEIGHTS),
        "weights_bytes": (run_dir / runs.WEIGHTS).stat().st_size,
        "opset": int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))),
        "checker": "passed",
        "compared_images": min(N_COMPARE, len(labels)),
        "max_abs_diff": max_diff,
        "max_abs_diff_limit": MAX_ABS_DIFF,
        "torch_accuracy": torch_acc,
        "onnx_accuracy": onnx_acc,
        "test_images": len(labels),
        "prediction_mismatches": int((onnx_out.argmax(1) != torch_out.argmax(1)).sum()),
        "threads": threads,
    }
    report["passed"] = bool(max_diff <= MAX_ABS_DIFF and abs(onnx_acc - torch_acc) * len(labels) <= 1)
    write_json(export_path(run_dir, ONNX_REPORT), report)
    return report
