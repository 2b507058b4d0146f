"""ONNX files without PyTorch: sessions, logits, the metadata every export writes, reuse checks.

    >>> unit_images(np.full((2, 28, 28), 255, np.uint8)).shape     # the input ``images`` of every export
    (2, 1, 28, 28)

Every ONNX export of a run — PyTorch's (:mod:`mnistlab.export.onnx_export`) and Keras's
(:mod:`mnistlab.frameworks.keras.export`) — takes ``images`` (``float32[N, 1, 28, 28]``, pixels in
[0, 1], normalisation inside the graph), returns ``logits`` and carries the same metadata;
``bench``, ``serve --backend onnx`` and the INT8 export use them through this module alone.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab import runs
from mnistlab.data import registry
from mnistlab.data.preprocess import pipeline_name
from mnistlab.export import export_path, require_deploy_extra
from mnistlab.export.preprocess_file import PREPROCESS_FILE
from mnistlab.fileio import read_json
from mnistlab.models import NUM_CLASSES
from mnistlab.runconfig import RunConfig
from mnistlab.version import __version__

INPUT_NAME, OUTPUT_NAME = "images", "logits"


def unit_images(images: Any) -> np.ndarray:
    """uint8 ``[N, H, W]`` or ``[N, C, H, W]`` (numpy or torch) → float32 ``[N, C, H, W]`` in [0, 1], the ONNX model's input."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x


def session(path: str | Path | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session of a file (or of its bytes) with ``threads`` intra-op threads
    (default: all cores)."""
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


def metadata(run_dir: Path, config: RunConfig, exporter: str) -> dict[str, str]:
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
        "preprocessing": f"{pipeline_name(config.dataset)} (mnistlab's pipeline for {config.dataset}); "
                         f"{PREPROCESS_FILE} beside the model, written by mnistlab export, is it in numpy and Pillow",
        "source_run": str(run_dir.resolve()),
        "run_created": config.created or "",
        "train_git_commit": str(env.get("git_commit") or ""),
        "exported": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "exporter": f"mnistlab {__version__}, {exporter}",
    }


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
        matches = recorded == (file_sha256(path), file_sha256(runs.weights_path(run_dir, runs.read_config(run_dir))))
        ok = matches and not _external_data(path)
    except Exception:  # noqa: BLE001 - unreadable report or file, damaged protobuf: any doubt means export again
        ok = False
    if not ok:
        logging.getLogger(__name__).warning("%s does not match the SHA-256 recorded in %s at export time "
                                            "(or that of the run's weights); exporting it again", path, report_path)
    return ok
