"""Interpretability: Grad-CAM, saliency, feature maps, filters, gradient-flow monitor, `mnistlab explain`."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("captum")
pytest.importorskip("matplotlib")

from mnistlab import runs  # noqa: E402
from mnistlab.cli import main  # noqa: E402
from mnistlab.data.datasets import load_test_split  # noqa: E402
from mnistlab.explain import gradcam as gc  # noqa: E402
from mnistlab.frameworks.pytorch import load_model, normalize_images  # noqa: E402
from mnistlab.training.gradflow import GradNormMonitor, read_grad_norms  # noqa: E402
from mnistlab.models import create_model, list_models  # noqa: E402

# The stages each architecture is documented to have, as (name, C, H, W) for a 28×28 input.
STAGES = {
    "simple": [("features.2", 32, 13, 13), ("features.5", 64, 5, 5), ("features.7", 64, 3, 3)],
    "deeper": [("features.stage1", 32, 14, 14), ("features.stage2", 64, 7, 7), ("features.stage3", 128, 3, 3)],
    "resnet": [("features.stem", 32, 14, 14), ("features.stage1", 32, 14, 14), ("features.stage2", 64, 7, 7),
               ("features.stage3", 120, 4, 4)],
}


@pytest.fixture(scope="module")
def trained(trained_run):
    model, config = load_model(trained_run)
    return gc.explainable(model), config


@pytest.fixture(scope="module")
def test_images(data_dir):
    x, y = load_test_split("mnist", data_dir, purpose="test pictures to explain in these tests")
    return x[:40], y[:40]


@pytest.fixture(scope="module")
def explained(trained_run, tmp_path_factory, data_dir):
    """A private copy of the shared run (so its folder stays untouched), explained once with defaults."""
    run = tmp_path_factory.mktemp("explain") / "run"
    shutil.copytree(trained_run, run)
    assert main(["explain", str(run), "--json", "--data-dir", str(data_dir)]) == 0
    return run


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def test_gradcam_matches_input_size_and_depends_on_class(trained, test_images):
    model, config = trained
    x = normalize_images(test_images[0][:8], config.data)
    logits = _logits(model, x)
    top2 = logits.topk(2, dim=1).indices
    layer = gc.last_spatial_layer(model)
    cam_pred = gc.gradcam(model, x, top2[:, 0].tolist(), layer)
    cam_other = gc.gradcam(model, x, top2[:, 1].tolist(), layer)
    assert cam_pred.shape == (8, 28, 28)
    assert bool((cam_pred >= 0).all())
    assert all(float(c.std()) > 0 for c in cam_pred), "a Grad-CAM map for the predicted class is constant"
    assert not torch.allclose(cam_pred, cam_other)
    sal = gc.saliency(model, x, top2[:, 0].tolist())
    assert sal.shape == (8, 28, 28) and float(sal.std()) > 0


def test_gradcam_mass_moves_with_the_digit(trained, test_images):
    """The same 40 digits moved 4 pixels left, then 4 right: the Grad-CAM mass goes with the ink.

    Measured on the shared run (seed 0): the model still reads 0.93 / 0.95 of them; the left half
    holds 0.64 of the mass when the digit sits left and 0.37 when it sits right (the inked side 0.64
    and 0.63), a mean move of 0.28, in the ink's direction for 39 of 40 digits. A map that ignores
    the input (uniform, random, fixed) moves by 0 and a mirrored one moves the wrong way.
    """
    model, config = trained
    images, labels = test_images
    moved = {"left": F.pad(images, (0, 4))[..., 4:], "right": F.pad(images, (4, 0))[..., :28]}
    left_share = {}
    for side, shifted in moved.items():
        x = normalize_images(shifted, config.data)
        pred = _logits(model, x).argmax(1)
        assert float((pred == labels).float().mean()) >= 0.8, "the model no longer reads the shifted digits"
        cam = gc.gradcam(model, x, pred.tolist(), gc.last_spatial_layer(model))
        left_share[side] = cam[:, :, :14].sum((1, 2)) / cam.sum((1, 2)).clamp_min(1e-12)
    inked = {"left": float(left_share["left"].mean()), "right": float(1 - left_share["right"].mean())}
    assert min(inked.values()) > 0.55, f"share of the Grad-CAM mass on the inked side: {inked}"
    move = left_share["left"] - left_share["right"]
    assert float(move.mean()) > 0.15 and float((move > 0).float().mean()) >= 0.8, move


@pytest.mark.parametrize("arch", list_models())
def test_every_model_explains(arch):
    torch.manual_seed(0)
    model = gc.explainable(create_model(arch))
    x = torch.randn(3, 1, 28, 28)
    layer = gc.last_spatial_layer(model)
    raw = gc.gradcam(model, x, [0, 1, 2], layer, relu=False)
    assert raw.shape == (3, 28, 28) and bool(torch.isfinite(raw).all()) and float(raw.std()) > 0
    assert gc.saliency(model, x, 4).shape == (3, 28, 28)
    maps = gc.feature_maps(model, x[:1])
    found = [(n, *m.shape) for n, m in maps]
    if arch in STAGES:  # the documented stages, exactly
        assert found == STAGES[arch]
    # every architecture, documented or new: named stages of `features`, each a [C, H, W] map that
    # never grows, the last one being what the head sees
    assert len(found) >= 2 and all(n.startswith("features.") and len(s) == 3 for n, *s in found)
    sides = [s[-1] for _, *s in found]
    assert sides == sorted(sides, reverse=True) and sides[-1] < 28
    assert tuple(maps[-1][1].shape) == tuple(model.forward_features(x[:1]).shape[1:])
    name, weights = gc.first_conv(model)
    assert weights.dim() == 4 and weights.shape[1] == 1
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_unknown_layer_is_a_user_error():
    from mnistlab.errors import UserError

    model = gc.explainable(create_model("deeper"))
    with pytest.raises(UserError, match="stage3"):
        gc.resolve_layer(model, "features.stage9")
    with pytest.raises(UserError):
        gc.resolve_layer(model, "head.1")  # a Linear layer: no spatial map to weight
    assert gc.resolve_layer(model, "features.stage2") is model.features.stage2


def test_explain_writes_figures_and_index(explained):
    out = explained / "plots" / "interpretability"
    index = json.loads((out / "index.json").read_text())
    kinds = [f["kind"] for f in index["files"]]
    assert kinds.count("gradcam") == len(index["examples"]) >= 2
    assert {"filters", "feature_maps", "gradient_flow"} <= set(kinds)
    notes = " ".join(e["note"] for e in index["examples"])
    assert "correct, highest confidence" in notes and "misclassified" in notes
    logits, labels = runs.load_predictions(explained / runs.PREDICTIONS)
    for ex in index["examples"]:  # the chosen examples agree with the saved test logits
        i = int(ex["example"].removeprefix("idx"))
        assert ex["predicted"] == int(logits[i].argmax())
        assert ("misclassified" in ex["note"]) == (labels[i] != logits[i].argmax())
    stages = next(f for f in index["files"] if f["kind"] == "feature_maps")["stages"]
    assert [(s["name"], *s["shape"]) for s in stages] == STAGES["simple"]
    for entry in index["files"]:
        with Image.open(out / entry["file"]) as img:
            assert img.size[0] > 300 and entry["caption"]


def test_explain_index_image_and_target(explained, tmp_path, test_images, capsys):
    run = tmp_path / "run"
    shutil.copytree(explained, run)
    assert main(["explain", str(run), "--index", "3", "--target", "5", "--json"]) == 0
    index = json.loads(capsys.readouterr().out)
    assert [e["example"] for e in index["examples"]] == ["idx3"]
    assert 5 in index["examples"][0]["gradcam_classes"]
    out = run / "plots" / "interpretability"
    assert (out / "feature_maps_idx3.png").is_file()
    assert sorted(p.name for p in out.glob("gradcam_*.png")) == ["gradcam_idx3.png"]  # stale ones removed
    path = tmp_path / "my digit.png"
    Image.fromarray(255 - test_images[0][0].numpy()).resize((140, 140)).save(path)  # dark ink on paper
    assert main(["explain", str(run), "--image", str(path), "--layer", "features.3", "--json"]) == 0
    index = json.loads(capsys.readouterr().out)
    assert index["layer"] == "features.3" and index["examples"][0]["label"] is None
    assert index["examples"][0]["predicted"] == int(test_images[1][0])
    assert (out / "gradcam_my_digit.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--index", "10000"], "outside the test set"),
    (["--layer", "nope"], "unknown or non-spatial layer"),
    (["--image", "IMAGE"], "not a readable image"),
    (["--target", "eleven"], "unknown class"),
])
def test_explain_bad_input_exits_2(explained, tmp_path, capsys, argv, message):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    argv = [str(bad) if a == "IMAGE" else a for a in argv]
    assert main(["explain", str(explained), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_explain_needs_predictions_and_a_model(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / runs.PREDICTIONS).unlink()
    assert main(["explain", str(run)]) == 2
    assert f"run 'mnistlab evaluate {run}' first" in capsys.readouterr().err
    from mnistlab.ensembles import ensemble_runs

    ensemble = tmp_path / "ensemble"
    ensemble_runs([trained_run, trained_run], out=ensemble)
    capsys.readouterr()
    assert main(["explain", str(ensemble)]) == 2
    assert "no single model to explain" in capsys.readouterr().err


def test_training_records_gradient_norms(trained_run, tmp_path, capsys):
    rows = read_grad_norms(trained_run)
    assert [r["layer"] for r in rows] == ["features.0", "features.3", "features.6", "head.1", "head.3"]
    assert all(r["epoch"] == 1 and r["status"] == "ok" for r in rows)
    assert all(0 < r["min_norm"] <= r["mean_norm"] <= r["max_norm"] for r in rows)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("plots"))
    assert main(["gradient-flow", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert (run / "plots" / "interpretability" / "gradient_flow.png").is_file()
    (run / "grad_norms.csv").unlink()
    assert main(["gradient-flow", str(run)]) == 2
    assert "no grad_norms.csv" in capsys.readouterr().err


def test_monitor_flags_vanishing_and_exploding_and_resumes(tmp_path, caplog):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    monitor = GradNormMonitor(model, tmp_path)
    x = torch.randn(16, 4)
    (model(x).sum() * 1e6).backward()  # exploding
    monitor.step()
    with caplog.at_level(logging.WARNING, logger="mnistlab.gradflow"):
        warnings = monitor.end_epoch(1)
    assert len(warnings) == 2 and all("exploding" in w for w in warnings)
    assert "exploding" in caplog.text
    model.zero_grad()
    (model(x).sum() * 0).backward()  # vanishing
    monitor.step()
    assert all("vanishing" in w for w in monitor.end_epoch(2))
    resumed = GradNormMonitor(model, tmp_path)  # a resumed run keeps epoch 1, redoes epoch 2
    model.zero_grad()
    model(x).sum().backward()
    resumed.step()
    assert resumed.end_epoch(2) == []
    assert [(r["epoch"], r["status"]) for r in read_grad_norms(tmp_path)] == [
        (1, "exploding"), (1, "exploding"), (2, "ok"), (2, "ok")]
