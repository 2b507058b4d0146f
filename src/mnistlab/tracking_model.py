"""A tracked run's model in MLflow's ONNX flavour, which MLflow's own loaders read back (no pickle).

``Tracker.log_run`` (:mod:`mnistlab.tracking`) calls :func:`log_onnx_model` after the run's files;
a user reads the model back from the MLflow run::

    import mlflow, mlflow.onnx, numpy as np
    mlflow.set_tracking_uri("sqlite:///runs/mlflow.db")
    proto = mlflow.onnx.load_model(f"runs:/{run_id}/model")            # an onnx.ModelProto
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")          # ONNX Runtime behind it
    model.predict(np.zeros((1, 1, 28, 28), np.float32))["logits"]      # float32[1, 10]

The model is the run's ONNX export (``mnistlab export RUN --format onnx``): input ``images``,
float32 ``[N, C, H, W]`` pixels in [0, 1] with the normalisation inside the graph, output
``logits``. ``RUN/export/model.onnx`` is used as it is while it is the checked export of the run's
current weights; otherwise the run's framework entry exports it, self-check included, into a
scratch copy of the run (its config and weights), so the run directory gains nothing. MLflow
stores the ONNX file with ``MLmodel`` (YAML), the signature, an input example and requirement
lists. ``mlflow.onnx`` imports pandas, so the ``track`` extra brings it; onnx and onnxruntime
come with ``deploy``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab import frameworks, runs
from mnistlab.errors import UserError
from mnistlab.export import ONNX_FILE, ONNX_REPORT, export_path, require_deploy_extra
from mnistlab.fileio import read_json
from mnistlab.runconfig import RunConfig

MODEL_NAME = "model"  # runs:/<run id>/model
PROVIDERS = ["CPUExecutionProvider"]  # what the export was checked on (MLflow's default asks for CUDA first)


@dataclass(frozen=True)
class OnnxModel:
    """The bytes of a run's ONNX export and the report of its self-check."""

    data: bytes
    reused: bool  # RUN/export/model.onnx as it was, or exported for tracking
    check: dict[str, Any]


def mlflow_onnx() -> Any:
    """``mlflow.onnx`` with what it needs (onnx, onnxruntime, pandas), or a one-line UserError naming the extra."""
    require_deploy_extra()
    try:
        import mlflow.onnx
    except ImportError as exc:
        raise UserError(
            f"{exc.name} is not installed (mlflow.onnx needs it); run: pip install 'mnistlab[track]'"
        ) from None
    return mlflow.onnx


def onnx_of_run(
    run_dir: str | Path, config: RunConfig, *, data_dir: str | None = None, threads: int | None = None
) -> OnnxModel:
    """The run's checked ONNX export, writing nothing into ``run_dir``; a UserError when it cannot export."""
    from mnistlab.export.onnx_runtime import reusable_export

    run_dir = Path(run_dir)
    framework = frameworks.of_run(config, run_dir)
    framework.require("onnx")
    framework.require_installed()
    require_deploy_extra()
    if reusable_export(run_dir, ONNX_FILE, ONNX_REPORT):
        report = read_json(export_path(run_dir, ONNX_REPORT))
        if report.get("passed") is True:
            return OnnxModel(export_path(run_dir, ONNX_FILE).read_bytes(), True, report)
    with tempfile.TemporaryDirectory(prefix="mnistlab-track-") as tmp:
        scratch = Path(tmp) / run_dir.name
        scratch.mkdir()
        for path in (run_dir / runs.CONFIG, runs.weights_path(run_dir, config)):
            shutil.copyfile(path, scratch / path.name)
        report = framework.export(scratch, "onnx", data_dir=data_dir, threads=threads)
        data = (scratch / report["file"]).read_bytes()
    if report.get("passed") is not True:
        raise UserError(
            f"its ONNX export failed its self-check (max |Δ logit| {report.get('max_abs_diff')}, "
            f"{report.get('prediction_mismatches')} predictions differ); see mnistlab export {run_dir}"
        )
    return OnnxModel(_named_source(data, run_dir), False, report)


def _named_source(data: bytes, run_dir: Path) -> bytes:
    """The export's metadata names the scratch copy it was made in: name the run instead."""
    import onnx

    proto = onnx.load_from_string(data)
    for prop in proto.metadata_props:
        if prop.key == "source_run":
            prop.value = str(run_dir.resolve())
    return proto.SerializeToString()


@contextlib.contextmanager
def _tracking_uri(mlflow: Any, uri: str):
    """MLflow's model logging reads the global tracking URI: ``uri`` for the while, then the one before."""
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def log_onnx_model(
    uri: str,
    run_id: str,
    experiment_id: str,
    run_dir: str | Path,
    config: RunConfig,
    *,
    data_dir: str | None = None,
    threads: int | None = None,
) -> str:
    """Log the run's model to the MLflow run ``run_id`` as ``model``; its URI (``models:/m-...``).

    A one-line UserError, before anything is logged, when it cannot (no onnx, onnxruntime or pandas,
    a framework that does not export ONNX, an ensemble, a failed self-check)."""
    flavour = mlflow_onnx()
    import mlflow
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from mnistlab.export.onnx_runtime import INPUT_NAME, OUTPUT_NAME

    run_dir = Path(run_dir)
    model = onnx_of_run(run_dir, config, data_dir=data_dir, threads=threads)
    data = config.data
    pixels = (data.in_channels or 1, data.image_size, data.image_size)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *pixels), INPUT_NAME)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, data.num_classes), OUTPUT_NAME)]),
    )
    check = model.check
    metadata = {
        "mnistlab_run": str(run_dir.resolve()),
        "arch": config.arch,
        "framework": config.framework,
        "dataset": config.dataset,
        "class_names": list(data.class_names),
        "input": f"{INPUT_NAME}: float32[N,{','.join(map(str, pixels))}], pixels in [0,1] "
        "(white on black, as mnistlab predict prepares them); the normalisation is inside the graph",
        "output": f"{OUTPUT_NAME}: float32[N,{data.num_classes}], unnormalised (softmax for probabilities)",
        "normalization": json.dumps({"mean": data.mean, "std": data.std}),
        "export_check": f"max |Δ logit| {check.get('max_abs_diff'):.2g} against {check.get('reference')} on "
        f"{check.get('compared_images')} {check.get('split')} images",
        "onnx_source": "the run's export/model.onnx" if model.reused else "exported for tracking",
    }
    client = mlflow.MlflowClient(uri)
    logged = client.create_logged_model(
        experiment_id, name=MODEL_NAME, source_run_id=run_id, tags={"mnistlab.run_dir": str(run_dir.absolute())}
    )
    with _tracking_uri(mlflow, uri):
        flavour.log_model(
            onnx.load_from_string(model.data),
            name=MODEL_NAME,
            model_id=logged.model_id,
            run_id=run_id,
            signature=signature,
            input_example=np.zeros((1, *pixels), np.float32),
            metadata=metadata,
            onnx_execution_providers=PROVIDERS,
            save_as_external_data=False,
            pip_requirements=[
                *flavour.get_default_pip_requirements(),
                f"pandas=={importlib.metadata.version('pandas')}",
            ],
        )
    return f"models:/{logged.model_id}"
