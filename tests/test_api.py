"""The Python API: `import mnistlab` is cheap, `mnistlab.train/load/ensemble/compare` and `Run` do what
their commands do, and mistakes are `mnistlab.UserError` with the command's own message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mnistlab
from mnistlab import frameworks

needs_keras = pytest.mark.skipif(not frameworks.available("keras"), reason="needs mnistlab[keras]")


@pytest.fixture(scope="module")
def test_images(data_dir):
    from mnistlab.data.datasets import load_test_split

    x, y = load_test_split("mnist", str(data_dir), purpose="API tests: images to predict")
    return x[:64].numpy(), y[:64].numpy()


def test_import_is_cheap_and_lists_the_api():
    code = ("import sys, mnistlab; assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules; "
            "print(' '.join(dir(mnistlab)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    for name in ("train", "load", "Run", "ensemble", "compare", "UserError", "Metrics", "Prediction"):
        assert name in out


def test_every_kind_of_input_gives_the_same_prediction(trained_run, test_images, tmp_path):
    import torch
    from PIL import Image

    run = mnistlab.load(trained_run)
    x, y = test_images
    p = run.predict(x)
    assert p.probabilities.shape == (64, 10)
    np.testing.assert_allclose(p.probabilities.sum(axis=1), 1, atol=1e-5)
    assert (p.labels == y).mean() > 0.85  # the fixture's one-epoch model scores about 0.95 on the test split
    assert p.classes[:3] == [str(k) for k in p.labels[:3]]
    np.testing.assert_array_equal(run.predict(x[:, None]).labels, p.labels)       # (N, 1, 28, 28)
    np.testing.assert_array_equal(run.predict(torch.as_tensor(x)).labels, p.labels)  # a tensor
    np.testing.assert_array_equal(run.predict(x.astype(np.float32) / 255).labels, p.labels)  # floats in [0, 1]
    assert run.predict(x[0]).labels.tolist() == [p.labels[0]]                         # one (28, 28) image
    # A picture as a user has it: a dark digit on a light background, larger than 28×28. Files and PIL
    # images go through the CLI's preprocessing, so both give the CLI's answer.
    picture = Image.fromarray(255 - x[0]).resize((112, 112), Image.BILINEAR)
    picture.save(tmp_path / "digit.png")
    from mnistlab.predict import predict_files

    cli = predict_files(trained_run, [tmp_path / "digit.png"])[0]
    assert run.predict(tmp_path / "digit.png").labels.tolist() == [cli["digit"]]
    assert run.predict(picture).labels.tolist() == [cli["digit"]]
    assert run.predict([str(tmp_path / "digit.png"), picture]).labels.tolist() == [cli["digit"]] * 2


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 32, 32), np.uint8), "32×32, this run takes 28×28"),
    (np.zeros((2, 3, 28, 28), np.uint8), "give (H, W), (N, H, W) or (N, 1, H, W)"),
    (np.full((28, 28), 2.0, np.float32), "values in [0, 1]"),
    (np.full((28, 28), 300, np.int32), "0..255"),
    ([], "no images"),
    (object(), "cannot read an image from object"),
])
def test_bad_images_are_one_line_user_errors(trained_run, images, message):
    with pytest.raises(mnistlab.UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        mnistlab.load(trained_run).predict(images)


def test_run_shows_its_files_and_metrics(trained_run):
    import json

    run = mnistlab.load(trained_run)
    saved = json.loads((trained_run / "metrics.json").read_text())
    assert run.metrics.accuracy == run.metrics["accuracy"] == saved["accuracy"]
    assert dict(run.metrics) == saved
    assert run.config.arch == "simple" and run.config.train.epochs == 1
    assert len(run.history) == 1 and run.history[0]["epoch"] == 1
    assert run.training["best_epoch"] == 1
    assert type(run.model).__name__ == "SimpleCNN" and not run.model.training
    html = run._repr_html_()
    assert f"{saved['accuracy']:.4f}" in html and "simple" in html
    assert f"{saved['accuracy']:.4f}" in run.metrics._repr_html_()
    assert mnistlab.load(str(trained_run)) == run


def test_explain_draws_a_map_per_image_that_depends_on_the_image(trained_run, test_images):
    run = mnistlab.load(trained_run)
    x, _ = test_images
    e = run.explain(x[:3])
    assert len(e.maps) == 3 and e.maps[0].shape == (28, 28)
    assert not np.allclose(e.maps[0], e.maps[1])
    assert e.targets == run.predict(x[:3]).labels.tolist()
    assert e._repr_png_().startswith(b"\x89PNG")
    saliency = run.explain(x[:1], method="saliency", target="3")
    assert saliency.targets == [3] and saliency.layer is None
    with pytest.raises(mnistlab.UserError, match="method 'shap'"):
        run.explain(x[:1], method="shap")


@pytest.mark.parametrize("call, message", [
    (lambda: mnistlab.train("simple", epoch=1), "unknown setting 'epoch'; did you mean 'epochs'?"),
    (lambda: mnistlab.train("nope"), "unknown model 'nope'"),
    (lambda: mnistlab.train(), "--arch is required"),
    (lambda: mnistlab.train("simple", framework="jax"), "unknown framework 'jax'"),
    (lambda: mnistlab.train("simple", seeds=[0, 1], nproc=2), "cannot be combined with --seeds"),
    (lambda: mnistlab.load("no/such/run"), "no such run directory"),
])
def test_mistakes_raise_user_error_never_system_exit(call, message):
    with pytest.raises(mnistlab.UserError, match=message):
        call()


def test_ema_on_keras_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(mnistlab.UserError, match="--ema-decay is PyTorch-only"):
        mnistlab.train("simple", framework="keras", ema_decay=0.99, out=tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_the_command_line_prints_the_api_message(capsys):
    from mnistlab.cli import main

    assert main(["train", "--preset", "default"]) == 2
    with pytest.raises(mnistlab.UserError) as exc:
        mnistlab.train(preset="default")
    assert capsys.readouterr().err.strip() == f"mnistlab train: error: {exc.value}"


@pytest.mark.slow
def test_the_readme_snippet_runs_as_written(tmp_path, monkeypatch, test_images):
    monkeypatch.chdir(tmp_path)
    images = test_images[0][:8]
    run = mnistlab.train("simple", epochs=1, train_subset=5000, seed=0, out="runs/api")
    assert isinstance(run, mnistlab.Run) and run.metrics is None
    m = run.evaluate()
    assert m.accuracy == m["accuracy"] > 0.85  # measured 0.8972 (seed 0, 5,000 images, one epoch of batch 128)
    p = run.predict(images)
    assert p.labels.shape == (8,) and p.probabilities.shape == (8, 10) and len(p.classes) == 8
    same = mnistlab.load("runs/api")
    path = same.export("onnx")
    assert path == Path("runs/api/export/model.onnx") and path.is_file()


@pytest.mark.slow
@needs_keras
def test_keras_runs_train_predict_and_explain_through_the_same_api(tmp_path, test_images, data_dir):
    import keras

    x, y = test_images
    run = mnistlab.train("simple", framework="keras", epochs=1, train_subset=3000, seed=0, out=tmp_path / "k",
                         data_dir=str(data_dir), progress=False)
    assert isinstance(run.model, keras.Model)
    assert (run.predict(x).labels == y).mean() > 0.8  # measured 0.95 (seed 0, 3,000 images)
    assert run.explain(x[:2]).maps[0].shape == (28, 28)
    # The service's Grad-CAM asks the framework's explainer: Keras runs get one too.
    from mnistlab.serve.model import ModelHolder

    holder = ModelHolder.load(run.path)
    assert holder.explainable
    assert holder.gradcam_png(x[0], int(y[0])).startswith("iVBOR")  # a base64 PNG


@pytest.mark.slow
@needs_keras
def test_load_works_on_a_quickstart_ensemble(smoke_quickstart, test_images):
    _, result = smoke_quickstart  # simple and keras:simple, and their ensemble
    ensemble_dir = Path([r for r in result["models"] if "+" in r["framework"]][0]["run_dir"])
    ensemble = mnistlab.load(ensemble_dir)
    assert ensemble.config.is_ensemble and len(ensemble.members) == 2
    assert ensemble.metrics.accuracy == ensemble.metrics["accuracy"]
    x, _ = test_images
    p = ensemble.predict(x[:16])
    members = [m.predict(x[:16]).probabilities for m in ensemble.members]
    assert p.probabilities.shape == (16, 10)
    assert np.abs(p.probabilities - np.mean(members, axis=0)).max() < 0.05  # weights chosen on validation
    with pytest.raises(mnistlab.UserError, match="an ensemble has no single model"):
        ensemble.model


@pytest.mark.slow
def test_ensemble_and_compare_from_python(trained_run, tmp_path, data_dir):
    other = mnistlab.train("simple", epochs=1, train_subset=3000, seed=1, batch_size=32, out=tmp_path / "b",
                           data_dir=str(data_dir), progress=False)
    other.evaluate(data_dir=str(data_dir))
    first = mnistlab.load(trained_run)
    comparison = mnistlab.compare([first, other], out=tmp_path / "cmp")
    from mnistlab.analysis.compare import accuracy_text

    assert len(comparison.runs) == 2 and Path(comparison.files["markdown"]).is_file()
    group = comparison.groups[0]  # one model, two seeds
    assert group["runs"] == 2
    assert group["accuracy_mean"] == pytest.approx((first.metrics.accuracy + other.metrics.accuracy) / 2)
    assert accuracy_text(group) in comparison._repr_html_()
    ensemble = mnistlab.ensemble([first, other], selection="all", out=tmp_path / "ens")
    assert ensemble.config.is_ensemble and ensemble.metrics.accuracy > 0.85
