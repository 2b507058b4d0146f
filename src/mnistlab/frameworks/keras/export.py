"""Keras runs deployed: ONNX, LiteRT and TensorFlow SavedModel, through Keras 3's own ``model.export``.

From a trained Keras run (``mnistlab export RUN --format onnx|litert|saved_model``)::

    from mnistlab.frameworks.keras.export import export_format

    report = export_format("runs/keras-simple", "litert")
    report["file"], report["passed"], report["max_abs_diff"]     # ('export/model.tflite', True, 4e-07)

Every format keeps the input contract of the PyTorch export: ``images``, ``float32[N, 1, 28, 28]``,
pixels in [0, 1], and ``logits`` out; the run's model is wrapped first (NCHW → NHWC, then
``(x - mean) / std`` as a ``Rescaling`` layer), so the normalisation is inside the graph and
``export/preprocess.py`` serves every format alike. The ONNX file (Keras converts with tf2onnx)
gets the PyTorch export's metadata, its output renamed ``logits`` and its batch dimension ``N``;
``bench``, ``serve --backend onnx`` and ``export --format int8`` then treat it as any ONNX export.
LiteRT and SavedModel files hold no free-form metadata: the same facts are in their report
(``export/litert.json``, ``export/saved_model.json``) under ``metadata``.

Each export checks itself against the Keras model (mnistlab's own predictions of the run) on the
validation split, not the test split, which is read once, at evaluation: the largest |Δ logit|
on the first 1,000 images (must be ≤ 1e-4), the share of the same predictions, and the accuracy
of each (must agree to within one image).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab import runs
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.export import ONNX_FILE, ONNX_REPORT, export_path, require_deploy_extra
from mnistlab.export.onnx_runtime import INPUT_NAME, OUTPUT_NAME, file_sha256, metadata, session, unit_images
from mnistlab.export.preprocess_file import PREPROCESS_FILE, write_preprocess
from mnistlab.fileio import write_bytes, write_json, write_with
from mnistlab.frameworks.keras.runtime import keras, load_keras_model, predictor, set_threads, tf
from mnistlab.maths.metrics import accuracy
from mnistlab.runconfig import DataFacts, RunConfig

MAX_ABS_DIFF = 1e-4
N_COMPARE = 1000


@dataclass(frozen=True)
class Format:
    """One export format: the file (or folder) it writes, its report, the runtime that checks it."""

    keras_name: str  # model.export(..., format=...)
    file: str
    report: str
    runtime: str


FORMATS = {
    "onnx": Format("onnx", ONNX_FILE, ONNX_REPORT, "ONNX Runtime"),
    "litert": Format("litert", "model.tflite", "litert.json", "LiteRT (TensorFlow's interpreter)"),
    "saved_model": Format("tf_saved_model", "saved_model", "saved_model.json", "TensorFlow SavedModel"),
}


def deployable(model: keras.Model, data: DataFacts) -> keras.Model:
    """``model`` behind the export contract: float32 NCHW pixels in [0, 1] named ``images``, normalised inside."""
    inp = keras.Input((data.in_channels, data.image_size, data.image_size), name=INPUT_NAME)
    x = keras.layers.Permute((2, 3, 1), name="nchw_to_nhwc")(inp)
    x = keras.layers.Rescaling(1 / data.std, offset=-data.mean / data.std, name="normalise")(x)
    return keras.Model(inp, model(x), name="mnistlab_export")


def _signature(data: DataFacts) -> list[Any]:
    return [tf.TensorSpec((None, data.in_channels, data.image_size, data.image_size), tf.float32, name=INPUT_NAME)]


@contextlib.contextmanager
def _quiet():
    """tf2onnx and the LiteRT converter log and print; stdout is for results (``--json``)."""
    logs = [logging.getLogger(name) for name in ("tf2onnx", "absl", "tensorflow")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")  # converters' deprecation notes are for their developers
            yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _onnx_bytes(model: keras.Model, config: RunConfig, run_dir: Path) -> bytes:
    """Keras's ONNX export, with the PyTorch export's output name, batch dimension and metadata."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="mnistlab-keras-onnx-") as tmp, _quiet():
        model.export(f"{tmp}/model.onnx", format="onnx", verbose=False, input_signature=_signature(config.data))
        proto = onnx.load(f"{tmp}/model.onnx")
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
    proto.graph.output[0].name = OUTPUT_NAME
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    proto.doc_string = f"mnistlab {config.arch} classifier for {config.dataset} (Keras)"
    onnx.helper.set_model_props(proto, metadata(run_dir, config, f"keras {keras.__version__}, tf2onnx"))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _write(fmt: Format, model: keras.Model, config: RunConfig, run_dir: Path) -> Path:
    """Export ``model`` in ``fmt`` under ``export/``, never leaving a half-written file or folder."""
    path = export_path(run_dir, fmt.file)
    if fmt.keras_name == "onnx":
        write_bytes(path, _onnx_bytes(model, config, run_dir))
    elif fmt.keras_name == "litert":
        with _quiet():
            write_with(path, lambda tmp: model.export(str(tmp), format="litert", verbose=False,
                                                      input_signature=_signature(config.data)), suffix=".tflite")
    else:  # a SavedModel is a folder: written beside, then swapped in
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            with _quiet():
                model.export(str(tmp / "m"), format="tf_saved_model", verbose=False,
                             input_signature=_signature(config.data))
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if path.exists():
                os.replace(path, old)
            os.replace(tmp / "m", path)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def runner(fmt: str, path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """The exported model in its own runtime: float32 ``[N, 1, 28, 28]`` in [0, 1] → logits."""
    if fmt == "onnx":
        sess = session(path, threads)
        return lambda x: sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    if fmt == "litert":
        with _quiet():
            interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
        inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

        def litert(x: np.ndarray) -> np.ndarray:
            interpreter.resize_tensor_input(inp, x.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp, x)
            interpreter.invoke()
            return interpreter.get_tensor(out)

        return litert
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda x: next(iter(serve(**{INPUT_NAME: tf.constant(x)}).values())).numpy()


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in order)."""
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{file_sha256(f)}\0".encode())
    return h.hexdigest()


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@runs.writes_run
def export_format(run_dir: str | Path, fmt: str, *, data_dir: str | None = None,
                  threads: int | None = None) -> dict[str, Any]:
    """Export a Keras run in ``fmt`` (``onnx``, ``litert``, ``saved_model``), check it, write its report."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r:.40}: a Keras run exports to {', '.join(FORMATS)}")
    if fmt == "onnx":
        require_deploy_extra()
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1")
    run_dir, spec = Path(run_dir), FORMATS[fmt]
    config = runs.read_config(run_dir)
    threads = threads or os.cpu_count() or 1
    set_threads(threads)
    path = _write(spec, deployable(load_keras_model(run_dir), config.data), config, run_dir)
    preprocess = write_preprocess(export_path(run_dir, PREPROCESS_FILE), config)

    # The self-check, on validation images: the Keras model as mnistlab runs it against the export.
    data = config.data
    val = load_train_val(config.dataset, val_size=data.val_size, seed=data.split_seed, data_dir=data_dir)
    images, labels = val.val_x.numpy(), val.val_y.numpy()
    reference = predictor(run_dir, config)(images)
    run = runner(fmt, path, threads)
    x = unit_images(images)
    exported = np.concatenate([run(x[i: i + 1000]) for i in range(0, len(x), 1000)])
    max_diff = float(np.abs(exported[:N_COMPARE] - reference[:N_COMPARE]).max())
    ref_acc, exp_acc = accuracy(reference, labels), accuracy(exported, labels)
    mismatches = int((exported.argmax(1) != reference.argmax(1)).sum())
    weights = runs.weights_path(run_dir, config)
    report = {
        "file": str(path.relative_to(run_dir)), "format": fmt, "preprocess": str(preprocess.relative_to(run_dir)),
        "bytes": _size(path), "sha256": _digest(path),  # what reusable_export checks for ONNX
        "weights_sha256": file_sha256(weights), "weights_bytes": weights.stat().st_size,
        "checker": "passed" if fmt == "onnx" else "n/a",  # onnx.checker ran in _onnx_bytes
        "reference": "Keras", "runtime": spec.runtime, "split": "validation",
        "compared_images": min(N_COMPARE, len(labels)), "max_abs_diff": max_diff, "max_abs_diff_limit": MAX_ABS_DIFF,
        "reference_accuracy": ref_acc, "export_accuracy": exp_acc, "validation_images": len(labels),
        "prediction_mismatches": mismatches, "agreement": 1 - mismatches / len(labels), "threads": threads,
        "metadata": metadata(run_dir, config, f"keras {keras.__version__}"),
    }
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path))
        report["opset"] = int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))
    report["passed"] = bool(max_diff <= MAX_ABS_DIFF and abs(exp_acc - ref_acc) * len(labels) <= 1)
    write_json(export_path(run_dir, spec.report), report)
    return report


def export_onnx(run_dir: str | Path, *, data_dir: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """``export/model.onnx`` of a Keras run (what ``bench``, ``serve --backend onnx`` and INT8 call)."""
    return export_format(run_dir, "onnx", data_dir=data_dir, threads=threads)
