"""Your own data, end to end as a user runs it: Kaggle's Digit Recognizer round trip, and a colour 32×32
data set through train (PyTorch and Keras), evaluate, export, predict and the service."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from mnistlab.cli import main

pytest_plugins = ["own_data_fixtures"]
pytestmark = pytest.mark.slow


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_kaggle_round_trip_scores_as_the_evaluation_said(store, own_sources, tmp_path, capsys):
    run(capsys, "data", "add", "kaggle", own_sources.train_csv)
    out_dir = tmp_path / "kaggle-run"
    run(capsys, "train", "--arch", "simple", "--dataset", "kaggle", "--epochs", 5, "--batch-size", 32,
        "--seed", 0, "--out", out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    assert config["dataset"] == "kaggle" and config["data"]["fingerprint"] == json.loads(
        (store / "kaggle" / "dataset.json").read_text())["fingerprint"]
    evaluation = json.loads(run(capsys, "evaluate", out_dir, "--json")[0])
    submission = tmp_path / "submission.csv"
    run(capsys, "predict", out_dir, own_sources.test_csv, "--submission", submission)
    answers = np.loadtxt(submission, delimiter=",", skiprows=1, dtype=np.int64)
    assert answers[:, 0].tolist() == list(range(1, 101))
    score = float((answers[:, 1] == own_sources.ty).mean())  # the labels held back from test.csv
    # 100 held-back images: the submission's accuracy is the evaluation's, within sampling noise (~3σ).
    assert score >= 0.85 and abs(score - evaluation["accuracy"]) <= 0.08, (score, evaluation["accuracy"])


def test_colour_32px_through_every_use_of_a_run(store, own_sources, tmp_path, capsys):
    run(capsys, "data", "add", "colour", own_sources.colour, "--channels", "3", "--size", "32")
    out_dir = tmp_path / "colour-run"
    run(capsys, "train", "--arch", "simple", "--dataset", "colour", "--epochs", 1, "--batch-size", 32,
        "--out", out_dir)
    data = json.loads((out_dir / "config.json").read_text())["data"]
    assert (data["in_channels"], data["image_size"]) == (3, 32)
    assert json.loads(run(capsys, "evaluate", out_dir, "--json")[0])["accuracy"] > 0.2
    run(capsys, "export", out_dir, "--json")
    import onnx

    graph = onnx.load(str(next(out_dir.rglob("*.onnx")))).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][1:] == [3, 32, 32]
    picture = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(picture)
    answer = json.loads(run(capsys, "predict", out_dir, picture, "--json")[0])[0]
    assert answer["label"] in [str(d) for d in range(10)] and len(answer["probabilities"]) == 10
    import mnistlab

    stored = np.load(store / "colour" / "test-images.npy")[:4]
    same = mnistlab.load(out_dir).predict(stored.transpose(0, 2, 3, 1))  # NHWC arrays are taken too
    assert np.allclose(same.probabilities, mnistlab.load(out_dir).predict(stored).probabilities)

    from serve_helpers import make_client

    from mnistlab.serve.model import ModelHolder

    client = make_client(ModelHolder.load(out_dir, "torch"))
    model = client.get("/v1/model").json()
    assert model["dataset"] == "colour" and model["class_names"] == [str(d) for d in range(10)]
    assert model["preprocessing"] == "plain"
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 200, 0)).save(buf, "PNG")
    reply = client.post("/v1/predict", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert reply.status_code == 200 and reply.json()["label"] == model["class_names"][reply.json()["digit"]]
    refused = client.post("/v1/predict", json={"pixels": [0] * 784})  # JSON pixel arrays are 28×28 gray
    assert refused.status_code == 422 and "3×32×32" in refused.json()["error"]


def test_keras_trains_on_a_colour_data_set(store, own_sources, tmp_path, capsys):
    pytest.importorskip("keras")
    run(capsys, "data", "add", "colour", own_sources.colour, "--channels", "3", "--size", "32")
    out_dir = tmp_path / "keras-colour"
    run(capsys, "train", "--framework", "keras", "--arch", "simple", "--dataset", "colour", "--epochs", 1,
        "--batch-size", 32, "--out", out_dir)
    assert json.loads(run(capsys, "evaluate", out_dir, "--json")[0])["accuracy"] > 0.2


def test_every_other_command_takes_an_added_data_set(store, own_sources, tmp_path, capsys):
    """plots, report, explain, bench, prune, ensemble, transfer (to another added set) and quickstart on
    a data set of 600 training images: each finds it by name and fits its splits to its size."""
    run(capsys, "data", "add", "digits", own_sources.npz)
    run(capsys, "data", "add", "clothes", own_sources.folder)
    a, b = tmp_path / "a", tmp_path / "b"
    for out_dir, arch in ((a, "simple"), (b, "attention")):
        run(capsys, "train", "--arch", arch, "--dataset", "digits", "--epochs", 1, "--out", out_dir)
        run(capsys, "evaluate", out_dir)
    run(capsys, "plots", a)
    assert (a / "plots" / "confusion_matrices" / "confusion_matrices.png").is_file()
    run(capsys, "explain", a, "--index", 0, 1)
    assert any((a / "plots" / "interpretability").glob("gradcam*.png"))
    report = tmp_path / "report.html"
    run(capsys, "report", a, "--out", report)
    assert "digits" in report.read_text()
    bench = json.loads(run(capsys, "bench", a, "--quick", "--paths", "torch_eager,onnxruntime", "--json")[0])
    assert set(bench["paths"]) == {"torch_eager", "onnxruntime"}, bench["paths"]
    assert "digits test images" in bench["conditions"]["input"]
    pruned = json.loads(run(capsys, "prune", a, "--sparsity", "0.5", "--finetune-epochs", 1, "--json")[0])
    assert pruned, "prune reported nothing"
    ensemble = json.loads(run(capsys, "ensemble", a, b, "--out", tmp_path / "ens", "--json")[0])
    assert 0 <= ensemble["accuracy"] <= 1 and len(ensemble["members"]) >= 1
    transfer = json.loads(run(capsys, "transfer", a, "--to", "clothes", "--mode", "finetune", "--recipe", "all",
                              "--epochs", 1, "--out", tmp_path / "tr", "--json")[0])
    assert json.loads((tmp_path / "tr" / "config.json").read_text())["dataset"] == "clothes", transfer
    out, _ = run(capsys, "quickstart", "--smoke", "--dataset", "digits", "--models", "simple",
                 "--out", tmp_path / "qs", "--json")
    assert json.loads(out)
