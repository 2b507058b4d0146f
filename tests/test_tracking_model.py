"""A tracked run's model in MLflow: a tiny PyTorch run logged into an SQLite store, loaded back with
MLflow's own loaders (mlflow.onnx, mlflow.pyfunc), giving the run's own logits; and a run logged
without its model, saying why, where it cannot be exported. (The Keras run: test_keras_export.py.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mlflow", reason="needs mnistlab[track]")
pytest.importorskip("pandas", reason="needs mnistlab[track] (mlflow.onnx imports pandas)")
pytest.importorskip("onnxruntime", reason="needs mnistlab[deploy]")

# Creating the SQLite store (MLflow's migrations, ~10 s) and the ONNX export with its self-check (~10 s)
# are most of the time: about 40 s on 2 busy cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    from mnistlab.tracking import Tracker

    tracker = Tracker.parse("mlflow", beside=tmp_path_factory.mktemp("store"))
    tracker.prepare("mnistlab")
    return tracker


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    """`simple`, one epoch on 300 images."""
    from mnistlab.config import TrainConfig
    from mnistlab.training.trainer import train

    os.environ.setdefault("MNISTLAB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("runs") / "simple"
    cfg = TrainConfig(arch="simple", epochs=1, train_subset=300, val_size=200, batch_size=50, seed=0)
    train(cfg, out, data_dir=str(data_dir), progress=False)
    return out


def _files(run: Path) -> dict[str, int]:
    return {str(p.relative_to(run)): p.stat().st_size for p in run.rglob("*")}


def _val_images(run: Path, data_dir: Path, n: int = 16) -> np.ndarray:
    from mnistlab import runs
    from mnistlab.data.datasets import load_train_val

    data = runs.read_config(run).data
    return (
        load_train_val("mnist", val_size=data.val_size, seed=data.split_seed, data_dir=str(data_dir)).val_x[:n].numpy()
    )


def test_the_logged_model_loads_in_mlflow_and_gives_the_runs_logits(tracker, tiny_run, data_dir, monkeypatch):
    import mlflow.onnx
    import mlflow.pyfunc
    import onnxruntime

    from mnistlab import frameworks, runs
    from mnistlab.export.onnx_runtime import unit_images

    before = _files(tiny_run)
    run_id = tracker.log_run(tiny_run, experiment="mnistlab", data_dir=str(data_dir))
    assert _files(tiny_run) == before  # exported in a scratch copy: the run gains no export/ folder

    client = mlflow.MlflowClient(tracker.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    model_uri = run.data.tags["mnistlab.model"]
    assert model_uri.startswith("models:/m-") and [o.model_id for o in run.outputs.model_outputs] == [model_uri[8:]]

    config = runs.read_config(tiny_run)
    images = _val_images(tiny_run, data_dir)
    own = frameworks.for_run(config, tiny_run).predict_function(tiny_run, config)(images)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)  # what runs:/ URIs are looked up in
    for uri in (f"runs:/{run_id}/model", model_uri):
        proto = mlflow.onnx.load_model(uri)
        assert {p.key: p.value for p in proto.metadata_props}["source_run"] == str(tiny_run.resolve())
        sess = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        by_onnx = sess.run(["logits"], {"images": unit_images(images)})[0]
        pyfunc = mlflow.pyfunc.load_model(uri)
        by_pyfunc = pyfunc.predict(unit_images(images))["logits"]
        for logits in (by_onnx, by_pyfunc):
            np.testing.assert_array_equal(logits.argmax(1), own.argmax(1))
            np.testing.assert_allclose(logits, own, atol=1e-4)
    assert pyfunc.metadata.signature.inputs.to_dict() == [
        {"name": "images", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 1, 28, 28)}}
    ]
    assert pyfunc.metadata.metadata["onnx_source"] == "exported for tracking"
    assert pyfunc.metadata.flavors["onnx"]["providers"] == ["CPUExecutionProvider"]


def test_without_onnx_the_run_is_logged_without_its_model_in_one_line(tracker, tiny_run, monkeypatch, capsys):
    import mlflow

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if mnistlab[deploy] were not installed
    run_id = tracker.log_run(tiny_run, experiment="mnistlab")
    err = capsys.readouterr().err.strip().splitlines()
    message = (
        f"mlflow: {tiny_run}: logged without its model: onnx is not installed; run: pip install 'mnistlab[deploy]'"
    )
    assert err == [message]
    run = mlflow.MlflowClient(tracker.uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mnistlab.model"] == "none"
    assert not (run.outputs and run.outputs.model_outputs) and "config.json" in {
        a.path for a in mlflow.MlflowClient(tracker.uri).list_artifacts(run_id)
    }
