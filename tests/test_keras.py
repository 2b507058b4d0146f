"""The Keras twins: parameter counts, optimiser parity with PyTorch, a short run, the .keras file, explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnistlab import frameworks
from mnistlab.models import list_models

# `pytest -m "not keras"` leaves these out; without TensorFlow they skip themselves.
_skip = pytest.mark.skipif(not frameworks.available("keras"), reason="needs mnistlab[keras] (keras + tensorflow-cpu)")


def needs_keras(test):
    return pytest.mark.keras(_skip(test))


@needs_keras
@pytest.mark.parametrize("arch", list_models())
def test_every_registered_model_has_a_twin_with_the_same_parameter_count(arch):
    """Registry-wide: a twin with exactly PyTorch's trainable parameters, or a registered one-line reason."""
    from mnistlab.errors import UserError
    from mnistlab.frameworks.keras.models import KERAS_MODELS, NO_TWIN, create_keras_model, trainable_parameters
    from mnistlab.models import count_parameters, create_model

    if arch in NO_TWIN:
        reason = NO_TWIN[arch]
        assert arch not in KERAS_MODELS and reason.strip() and "\n" not in reason
        with pytest.raises(UserError, match="no Keras twin"):
            create_keras_model(arch)
        return
    model = create_keras_model(arch)
    assert trainable_parameters(model) == count_parameters(create_model(arch))
    assert model.input_shape == (None, 28, 28, 1)
    logits = np.asarray(model(np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype(np.float32)))
    assert logits.shape == (4, 10)
    assert not np.allclose(np.exp(logits).sum(1), 1, atol=1e-3)  # raw logits, not (log-)probabilities


@needs_keras
def test_twin_table_names_only_registered_models():
    from mnistlab.frameworks.keras.models import KERAS_MODELS, NO_TWIN

    assert set(KERAS_MODELS) | set(NO_TWIN) == set(list_models()) and not set(KERAS_MODELS) & set(NO_TWIN)


@needs_keras
@pytest.mark.parametrize("optimizer,scheduler", [("adam", "onecycle"), ("adamw", "step")])
def test_optimiser_and_schedule_follow_pytorch(optimizer, scheduler):
    """Same weights, same batches: after 12 steps the Keras and PyTorch weights agree."""
    from mnistlab.config import TrainConfig
    from mnistlab.frameworks.keras.runtime import keras
    from mnistlab.frameworks.keras.train import Stepper, learning_rate
    from mnistlab.training.torch_step import make_optimizer, make_scheduler

    cfg = TrainConfig(lr=0.05, weight_decay=0.01, epochs=3, optimizer=optimizer, scheduler=scheduler, step_size=1)
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    inputs = keras.Input((4,))
    kmodel = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    kmodel.layers[-1].set_weights([w, b])
    tmodel = torch.nn.Linear(4, 3)
    with torch.no_grad():
        tmodel.weight.copy_(torch.from_numpy(w.T))
        tmodel.bias.copy_(torch.from_numpy(b))
    stepper, opt = Stepper(kmodel, cfg), make_optimizer(tmodel, cfg)
    sched, per_batch = make_scheduler(opt, cfg, steps_per_epoch=4)
    for step in range(12):
        epoch = step // 4 + 1
        x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)
        lr, _ = learning_rate(cfg, step, epoch, 4)
        assert lr == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6)
        stepper.set_hyper(*learning_rate(cfg, step, epoch, 4))
        stepper.step(x, y.astype(np.int64))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
        if per_batch:
            sched.step()
        elif step % 4 == 3:
            sched.step()
    kw, kb = kmodel.layers[-1].get_weights()
    assert not np.allclose(kw, w, atol=1e-2)  # the weights moved
    np.testing.assert_allclose(kw, tmodel.weight.detach().numpy().T, atol=2e-5)
    np.testing.assert_allclose(kb, tmodel.bias.detach().numpy(), atol=2e-5)


@needs_keras
@pytest.mark.slow  # trains the Keras twin (keras_run)
def test_short_keras_run_writes_the_run_layout_and_learns(keras_run):
    from mnistlab import runs

    config = runs.read_config(keras_run)
    assert config.framework == "keras" and config.params == 93_322
    assert (keras_run / "model.keras").is_file()
    history = runs.read_history(keras_run)
    assert list(history[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                                "samples_per_s"]
    training = json.loads((keras_run / runs.TRAINING).read_text())
    assert training["best_val_acc"] >= 0.93  # 1 epoch on 6k images; PyTorch's twin gets ~0.95
    metrics = json.loads((keras_run / runs.METRICS).read_text())
    assert metrics["framework"] == "keras" and metrics["accuracy"] >= 0.93


@needs_keras
@pytest.mark.slow  # trains the Keras twin (keras_run)
def test_keras_file_loads_in_plain_keras_with_the_same_logits(keras_run, data_dir, tmp_path):
    """A fresh interpreter that never imports mnistlab loads model.keras and reproduces the saved logits."""
    from mnistlab import runs

    logits, labels = runs.load_predictions(keras_run / runs.PREDICTIONS)
    config = runs.read_config(keras_run)
    from mnistlab.data.datasets import load_test_split

    x = load_test_split("mnist", str(data_dir), purpose="compare saved test logits with plain Keras")[0][:200].numpy()
    np.save(tmp_path / "x.npy", ((x / 255.0 - config.data.mean) / config.data.std)[..., None].astype(np.float32))
    script = ("import os, sys, numpy as np; os.environ['KERAS_BACKEND'] = 'tensorflow'; import keras; "
              "m = keras.saving.load_model(sys.argv[1]); "
              "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0)); "
              "assert 'mnistlab' not in sys.modules")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", script, str(keras_run / "model.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "out.npy")], check=True, env=env, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), logits[:200], atol=1e-4)


@needs_keras
@pytest.mark.slow  # trains the Keras twin (keras_run)
def test_cli_trains_keras_and_load_model_refuses_it(keras_run, data_dir, tmp_path, capsys):
    from mnistlab import runs
    from mnistlab.cli import main
    from mnistlab.errors import UserError
    from mnistlab.frameworks.pytorch import load_model

    with pytest.raises(UserError, match="keras run"):
        load_model(keras_run)
    out = tmp_path / "cli"
    rc = main(["train", "--framework", "keras", "--arch", "simple", "--epochs", "1", "--train-subset", "200",
               "--val-size", "100", "--out", str(out), "--quiet", "--json", "--data-dir", str(data_dir)])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(out)
    assert runs.read_config(out).framework == "keras"
    assert main(["train", "--resume", str(out), "--quiet"]) == 2


@pytest.mark.keras
def test_missing_keras_is_a_one_line_user_error(monkeypatch):
    import mnistlab.frameworks as fw
    from mnistlab.errors import UserError

    monkeypatch.setattr(fw.Framework, "available", lambda self: self.name != "keras")
    with pytest.raises(UserError, match=r"pip install 'mnistlab\[keras\]'"):
        fw.get("keras")


@needs_keras
@pytest.mark.slow  # trains the Keras twin (keras_run)
def test_frameworks_compares_two_existing_runs(trained_run, keras_run, tmp_path, data_dir):
    """`mnistlab frameworks TORCH_RUN KERAS_RUN`: both measured in child processes, table written."""
    from mnistlab.errors import UserError
    from mnistlab.experiments.frameworks import compare_frameworks

    with pytest.raises(UserError, match="one PyTorch run and one Keras run"):
        compare_frameworks([trained_run, trained_run], out=tmp_path / "bad")
    result = compare_frameworks([trained_run, keras_run], out=tmp_path / "fw", data_dir=str(data_dir),
                                latency_calls=20, seconds=0.2)
    rows = {r["framework"]: r for r in result["rows"]}
    assert rows["torch"]["params"] == rows["keras"]["params"] == 93_322
    for row in rows.values():
        assert row["latency_ms_p50"] > 0 and row["throughput_b256"] > 0 and row["peak_rss_infer_mb"] > 50
        assert row["peak_rss_train_mb"] is None  # existing runs: training was not measured here
    assert rows["keras"]["model_file"] == "model.keras"
    table = (tmp_path / "fw" / "frameworks.md").read_text()
    assert "| test accuracy |" in table and "n/a" in table


def _twin_simple_with_torch_weights():
    """A PyTorch `simple` (random weights) and its Keras twin holding the very same weights."""
    from mnistlab.frameworks.keras.models import create_keras_model
    from mnistlab.models import create_model

    torch.manual_seed(0)
    tmodel = create_model("simple").eval()
    kmodel = create_keras_model("simple")
    convs = [m for m in tmodel.features if isinstance(m, torch.nn.Conv2d)]
    for layer, conv in zip(["features_0_conv", "features_3_conv", "features_6_conv"], convs):
        kernel = conv.weight.detach().permute(2, 3, 1, 0)  # OIHW → HWIO
        kmodel.get_layer(layer).set_weights([kernel.numpy(), conv.bias.detach().numpy()])
    fc1, fc2 = tmodel.head[1], tmodel.head[3]
    c = convs[-1].out_channels  # PyTorch flattens (C, H, W), Keras (H, W, C)
    w1 = fc1.weight.detach().reshape(fc1.out_features, c, 3, 3).permute(2, 3, 1, 0).reshape(-1, fc1.out_features)
    kmodel.get_layer("head_1_dense").set_weights([w1.numpy(), fc1.bias.detach().numpy()])
    kmodel.get_layer("head_3_dense").set_weights([fc2.weight.detach().T.numpy(), fc2.bias.detach().numpy()])
    return tmodel, kmodel


@needs_keras
def test_keras_gradcam_and_saliency_match_captum_on_the_same_weights(data_dir):
    """The GradientTape explainer against captum's, on one set of weights in both frameworks."""
    pytest.importorskip("captum")
    from mnistlab.data.datasets import get_dataset_info, load_train_val
    from mnistlab.explain.torch_backend import TorchExplainer
    from mnistlab.frameworks.keras.explain import KerasExplainer
    from mnistlab.runconfig import DataFacts

    info = get_dataset_info("mnist")
    data = DataFacts(class_names=info.class_names, num_classes=info.num_classes, mean=info.mean, std=info.std)
    tmodel, kmodel = _twin_simple_with_torch_weights()
    t_ex, k_ex = TorchExplainer(tmodel, data), KerasExplainer(kmodel, data)
    assert k_ex.default_layer() == "features_7_relu"
    images = load_train_val("mnist", val_size=100, data_dir=str(data_dir)).val_x[:3].numpy()
    nonzero = 0
    for image in images:
        probs = t_ex.probabilities(image)
        np.testing.assert_allclose(k_ex.probabilities(image), probs, atol=1e-5)
        for target in np.argsort(-probs)[:2]:
            t_cam = t_ex.gradcam(image, int(target), "features.7")
            k_cam = k_ex.gradcam(image, int(target), "features_7_relu")
            assert k_cam.shape == (28, 28)
            # untrained weights: a class may have no positive evidence at all (an all-zero map)
            np.testing.assert_allclose(k_cam, t_cam, atol=1e-4 * max(float(t_cam.max()), 1e-3))
            nonzero += float(t_cam.max()) > 0
            np.testing.assert_allclose(k_ex.saliency(image, int(target)), t_ex.saliency(image, int(target)),
                                       rtol=1e-3, atol=1e-6)
    assert nonzero >= 2, "too few non-zero Grad-CAM maps to compare"
    name, filters = k_ex.first_conv()
    np.testing.assert_allclose(filters, t_ex.first_conv()[1], atol=1e-7)
    k_maps, t_maps = k_ex.feature_maps(images[0]), t_ex.feature_maps(images[0])
    assert [m.shape for _, m in k_maps] == [m.shape for _, m in t_maps]
    for (_, k_map), (_, t_map) in zip(k_maps, t_maps):
        np.testing.assert_allclose(k_map, t_map, atol=1e-4)


@needs_keras
@pytest.mark.parametrize("arch", list_models())
def test_keras_explainer_works_for_every_twin(arch):
    from mnistlab.errors import UserError
    from mnistlab.frameworks.keras.explain import KerasExplainer
    from mnistlab.frameworks.keras.models import NO_TWIN, create_keras_model
    from mnistlab.models import create_model
    from mnistlab.runconfig import DataFacts

    if arch in NO_TWIN:
        pytest.skip(NO_TWIN[arch])
    explainer = KerasExplainer(create_keras_model(arch), DataFacts(tuple("0123456789"), 10, mean=0.1307, std=0.3081))
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    cam = explainer.gradcam(image, 3, explainer.default_layer())
    assert cam.shape == (28, 28) and np.isfinite(cam).all() and (cam >= 0).all()
    assert explainer.saliency(image, 3).shape == (28, 28)
    with pytest.raises(UserError, match="unknown or non-spatial layer"):
        explainer.check_layer("head_dense")
    # one feature-map stage per PyTorch stage, with the same [C, H, W]
    from mnistlab.explain import gradcam as gc

    torch_maps = gc.feature_maps(gc.explainable(create_model(arch)), torch.zeros(1, 1, 28, 28))
    assert [m.shape for _, m in explainer.feature_maps(image)] == [tuple(m.shape) for _, m in torch_maps]


@needs_keras
@pytest.mark.slow
def test_explain_writes_the_same_files_for_keras_as_for_pytorch(trained_run, keras_run, tmp_path, data_dir):
    pytest.importorskip("captum")
    pytest.importorskip("matplotlib")
    import shutil

    from mnistlab.cli import main

    written = {}
    for framework, source in (("torch", trained_run), ("keras", keras_run)):
        run = tmp_path / framework
        shutil.copytree(source, run)
        assert main(["explain", str(run), "--index", "0", "7", "--target", "3", "--json",
                     "--data-dir", str(data_dir)]) == 0
        index = json.loads((run / "plots" / "interpretability" / "index.json").read_text())
        assert index["framework"] == framework
        written[framework] = {f["file"]: f["kind"] for f in index["files"]}
        assert {p.name for p in (run / "plots" / "interpretability").glob("*.png")} == set(written[framework])
    # gradient_flow.png plots grad_norms.csv, which only the PyTorch trainer records so far
    written["torch"].pop("gradient_flow.png", None)
    assert written["keras"] == written["torch"]
    assert {"gradcam_idx0.png", "gradcam_idx7.png", "filters.png", "feature_maps_idx0.png"} <= set(written["keras"])


KERAS_TINY = dict(arch="simple", framework="keras", epochs=2, train_subset=600, val_size=200, batch_size=64, seed=2)


@pytest.mark.slow
@needs_keras
def test_keras_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, data_dir, kill_after_first_epoch):
    """Killed after epoch 1's checkpoint, resumed: the same history as a run never stopped."""
    from mnistlab import runs
    from mnistlab.config import TrainConfig
    from mnistlab.frameworks.keras.train import train

    train(TrainConfig(**KERAS_TINY), tmp_path / "full", progress=False)
    kill_after_first_epoch(train, TrainConfig(**KERAS_TINY), tmp_path / "killed")
    assert len(runs.read_history(tmp_path / "killed")) == 1
    resumed = train(None, tmp_path / "killed", resume=True, progress=False)
    assert resumed["epochs_run"] == 2 and resumed["resumed"] is True
    full, killed = runs.read_history(tmp_path / "full"), runs.read_history(tmp_path / "killed")
    for key in ("train_loss", "val_loss", "val_acc", "lr"):
        assert [r[key] for r in killed] == pytest.approx([r[key] for r in full], rel=1e-5), key


@pytest.mark.slow
@needs_keras
def test_keras_amp_trains_in_bfloat16_and_saves_float32(tmp_path, data_dir):
    from mnistlab.config import TrainConfig
    from mnistlab.frameworks.keras.runtime import keras, load_keras_model
    from mnistlab.frameworks.keras.train import train

    summary = train(TrainConfig(**{**KERAS_TINY, "epochs": 1, "train_subset": 2000, "batch_size": 32, "lr": 3e-3},
                                amp=True, tensorboard=True), tmp_path / "amp", progress=False)
    # it learns under bf16: 63 steps reached 0.85 at seed 2 (0.845 at seeds 0 and 1); chance 0.10
    assert summary["best_val_acc"] >= 0.75
    assert summary["precision"] == "bf16" and "--amp on" in summary["precision_reason"]
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is left as found
    model = load_keras_model(tmp_path / "amp")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    from mnistlab.frameworks.inference import predictor

    logits = predictor(tmp_path / "amp")(np.zeros((3, 28, 28), np.uint8))
    assert logits.dtype == np.float32 and logits.shape == (3, 10)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "amp" / "tensorboard"))
    board.Reload()
    assert {"loss/train", "accuracy/val", "lr"} <= set(board.Tags()["scalars"])
    assert any(t.startswith("grad_norm/") for t in board.Tags()["scalars"])


@needs_keras
def test_keras_amp_auto_keeps_float32_even_on_a_native_bf16_cpu(data_dir, monkeypatch):
    """Keras has no timing of its own (PyTorch's says nothing of TensorFlow's kernels): auto is float32."""
    from mnistlab.config import TrainConfig
    from mnistlab.data.datasets import load_train_val
    from mnistlab.frameworks.keras.train import build_keras
    from mnistlab.training import precision
    from mnistlab.training.distributed import DistContext

    monkeypatch.setattr(precision, "cpu_bf16", lambda: precision.CpuBf16("Xeon", "AMX", "AVX512"))
    data = load_train_val("mnist", val_size=100, train_subset=100)
    step, _ = build_keras(TrainConfig(**{**KERAS_TINY, "amp": "auto"}), data, torch.device("cpu"), DistContext(),
                          None, 1)
    assert step.precision.precision == "float32" and "Keras" in step.precision.reason
    assert {layer.dtype_policy.name for layer in step.model.layers} == {"float32"}


@needs_keras
def test_test_time_augmentation_works_on_a_keras_run(keras_run, data_dir):
    """`evaluate --tta` wraps the run's predictor, whatever the framework: 9 views, log-probabilities out."""
    from mnistlab.data.datasets import load_test_split
    from mnistlab.evaluation.tta import tta_logits
    from mnistlab.frameworks.inference import predictor

    x, y = load_test_split("mnist", data_dir, purpose="check TTA on a Keras run's predictor")
    x, y = x[:200].numpy(), y[:200].numpy()
    predict, calls = predictor(keras_run), []
    tta = tta_logits(lambda v: calls.append(len(v)) or predict(v), x)
    assert tta.shape == (200, 10) and sum(calls) == 9 * 200
    np.testing.assert_allclose(np.exp(tta.astype(np.float64)).sum(1), 1, atol=1e-4)
    assert (tta.argmax(1) == y).mean() >= 0.85  # one epoch on 6,000 images: TTA keeps it a working classifier
