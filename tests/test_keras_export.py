"""Keras runs deployed: ONNX, LiteRT and SavedModel each load in their own runtime and agree with
the Keras model; the ONNX export serves (`serve --backend onnx`) and benchmarks like PyTorch's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")  # the keras extra: Keras converts to ONNX with it
# Three conversions (tf2onnx, the LiteRT converter, a SavedModel), each checked on 5,000 validation
# images: about 30 s beyond the Keras run the fast tests train anyway (measured under load).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported_keras(keras_run, tmp_path_factory, data_dir):
    """A copy of the Keras run with all three formats exported (through the CLI, JSON on stdout)."""
    from mnistlab import cli

    out = tmp_path_factory.mktemp("keras-export") / "simple"
    shutil.copytree(keras_run, out)
    for fmt in ("onnx", "litert", "saved_model"):
        assert cli.main(["export", str(out), "--format", fmt, "--json", "--threads", "1",
                         "--data-dir", str(data_dir)]) == 0
    return out


@pytest.fixture(scope="module")
def val_digits(data_dir):
    from mnistlab.data.datasets import load_train_val

    val = load_train_val("mnist", data_dir=str(data_dir))
    return val.val_x[:64].numpy(), val.val_y[:64].numpy()


def _keras_logits(run, images):
    from mnistlab import runs
    from mnistlab.frameworks.keras.runtime import predictor

    return predictor(run, runs.read_config(run))(images)


@pytest.mark.parametrize("fmt, report", [("onnx", "onnx.json"), ("litert", "litert.json"),
                                         ("saved_model", "saved_model.json")])
def test_each_format_checks_itself_against_keras(exported_keras, fmt, report):
    r = json.loads((exported_keras / "export" / report).read_text())
    assert r["passed"] and r["reference"] == "Keras" and r["split"] == "validation"
    assert r["max_abs_diff"] <= 1e-4 and r["agreement"] >= 0.9998
    assert r["export_accuracy"] > 0.9  # the one-epoch fixture reaches ~0.96
    assert json.loads(r["metadata"]["class_names"]) == [str(i) for i in range(10)]
    assert (exported_keras / "export" / "preprocess.py").is_file()


def test_onnx_loads_in_onnxruntime_with_the_pytorch_contract(exported_keras, val_digits):
    import onnxruntime as ort

    images, _ = val_digits
    sess = ort.InferenceSession(str(exported_keras / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, out.name) == ("images", ["N", 1, 28, 28], "logits")
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["preprocessing"].startswith("digit") and "normalisation is inside the graph" in meta["input"]
    (logits,) = sess.run(["logits"], {"images": images[:, None].astype(np.float32) / 255})
    np.testing.assert_allclose(logits, _keras_logits(exported_keras, images), atol=1e-4)


@pytest.mark.filterwarnings("ignore::UserWarning")  # TF points at the ai_edge_litert package; its interpreter works
def test_litert_loads_in_tensorflows_interpreter(exported_keras, val_digits):
    import tensorflow as tf

    images, _ = val_digits
    interpreter = tf.lite.Interpreter(model_path=str(exported_keras / "export" / "model.tflite"))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape_signature"]) == [-1, 1, 28, 28]
    interpreter.resize_tensor_input(inp["index"], (len(images), 1, 28, 28))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images[:, None].astype(np.float32) / 255)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), _keras_logits(exported_keras, images), atol=1e-4)


def test_saved_model_loads_with_tf_saved_model_load(exported_keras, val_digits):
    import tensorflow as tf

    images, _ = val_digits
    loaded = tf.saved_model.load(str(exported_keras / "export" / "saved_model"))
    logits = loaded.serve(tf.constant(images[:, None].astype(np.float32) / 255)).numpy()
    np.testing.assert_allclose(logits, _keras_logits(exported_keras, images), atol=1e-4)


def test_keras_run_serves_on_onnx_and_benchmarks(exported_keras, val_digits):
    from mnistlab.export.bench import bench_run
    from mnistlab.serve.model import ModelHolder

    images, _ = val_digits
    holder = ModelHolder.load(exported_keras, backend="onnx", threads=1)
    assert holder.backend == "onnx"
    np.testing.assert_allclose(holder.logits(images), _keras_logits(exported_keras, images), atol=1e-4)
    result = bench_run(exported_keras, quick=True, export=False, threads=1, paths=("torch_eager", "onnxruntime"))
    assert "onnxruntime" in result["paths"] and result["paths"]["onnxruntime"]["throughput_256"] > 0
    assert "PyTorch model" in result["skipped"]["torch_eager"]


def test_keras_run_quantizes_through_the_same_onnx_path(exported_keras, data_dir):
    from mnistlab.export.quantize import export_int8

    report = export_int8(exported_keras, data_dir=str(data_dir), calibration_size=300, seconds=0.05)
    assert abs(report["accuracy_delta_points"]) <= 1.0 and report["prediction_agreement"] > 0.97


def test_a_tracked_keras_run_logs_its_checked_onnx_export_as_its_mlflow_model(exported_keras, val_digits, tmp_path,
                                                                                monkeypatch):
    """`--track mlflow` takes the run's export/model.onnx (the checked export of its weights) as the model;
    MLflow's pyfunc loader gives the Keras model's logits (one more SQLite store: ~10 s)."""
    pytest.importorskip("mlflow", reason="needs mnistlab[track]")
    pytest.importorskip("pandas", reason="needs mnistlab[track] (mlflow.onnx imports pandas)")
    import mlflow.pyfunc

    from mnistlab.tracking import Tracker

    tracker = Tracker.parse("mlflow", beside=tmp_path)
    run_id = tracker.log_run(exported_keras, experiment="keras")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracker.uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert model.metadata.metadata["framework"] == "keras"
    assert model.metadata.metadata["onnx_source"] == "the run's export/model.onnx"
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path / "got")))
    assert (local / "model.onnx").read_bytes() == (exported_keras / "export" / "model.onnx").read_bytes()
    images, _ = val_digits
    logits, keras_logits = model.predict(images[:, None].astype(np.float32) / 255)["logits"], \
        _keras_logits(exported_keras, images)
    np.testing.assert_array_equal(logits.argmax(1), keras_logits.argmax(1))
    np.testing.assert_allclose(logits, keras_logits, atol=1e-4)
