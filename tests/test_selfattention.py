"""The self-attention CNN: its attention weights, the Keras twin holding the same weights, attention maps in explain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab import frameworks
from mnistlab.models import create_model
from mnistlab.runconfig import DataFacts

MNIST = DataFacts(class_names=tuple("0123456789"), num_classes=10, mean=0.1307, std=0.3081)
needs_keras = pytest.mark.keras(pytest.mark.skipif(not frameworks.available("keras"),
                                                   reason="needs mnistlab[keras] (keras + tensorflow-cpu)"))


def _digits(data_dir, n: int) -> np.ndarray:
    from mnistlab.data.datasets import load_test_split

    return load_test_split("mnist", str(data_dir), purpose="pictures for attention tests")[0][:n].numpy()


def test_each_heads_weights_sum_to_one_over_the_keys_and_change_with_the_input():
    torch.manual_seed(0)
    model = create_model("selfattention").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        weights = model.attention_weights(x)
    assert len(weights) == 2 and all(w.shape == (2, 4, 49, 49) for w in weights)
    for w in weights:
        assert bool((w >= 0).all())
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 49))
        assert (w[0] - w[1]).abs().max() > 1e-3  # another image, other weights
        assert (w[:, 0] - w[:, 1]).abs().max() > 1e-3  # heads differ


def test_a_model_without_self_attention_has_no_attention_maps():
    pytest.importorskip("captum")
    from mnistlab.explain.attention import draw
    from mnistlab.explain.torch_backend import TorchExplainer

    explainer = TorchExplainer(create_model("attention"), MNIST)  # channel attention: no position attends to another
    image = np.zeros((28, 28), np.uint8)
    assert explainer.attention_maps(image) == []
    assert draw(explainer, [{"image": image, "name": "blank", "note": "blank"}], Path("unused")) == []


def test_position_encoding_tells_positions_apart():
    from mnistlab.models.selfattention import sinusoidal_grid

    pe = sinusoidal_grid(64, 7, 7).flatten(1).T  # [49 positions, 64]
    distances = torch.cdist(pe, pe)
    assert pe.shape == (49, 64) and float(distances[~torch.eye(49, dtype=torch.bool)].min()) > 0.1
    with pytest.raises(ValueError, match="divisible by 4"):
        sinusoidal_grid(30, 7, 7)


def _keras_twin_with_torch_weights(tmodel):
    """The Keras twin of ``tmodel`` (a PyTorch ``selfattention``) holding the very same weights."""
    from mnistlab.frameworks.keras.models import create_keras_model

    kmodel = create_keras_model("selfattention")
    t = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    for torch_name, keras_name in [("stem1.0", "stem1"), ("stem2.0", "stem2"), ("stem3.0", "stem3_0"),
                                   ("stem3.1", "stem3_1")]:
        p = f"features.{torch_name}."
        kmodel.get_layer(f"{keras_name}_conv").set_weights([t[p + "0.weight"].transpose(2, 3, 1, 0)])  # OIHW → HWIO
        kmodel.get_layer(f"{keras_name}_bn").set_weights([t[p + "1." + k] for k in
                                                          ("weight", "bias", "running_mean", "running_var")])
    attention = tmodel.features.attention
    heads, dim = attention.blocks[0].attn.heads, attention.norm.normalized_shape[0]
    for i in range(len(attention.blocks)):
        p, name = f"features.attention.blocks.{i}.", f"attention_block{i}"
        for norm in ("norm1", "norm2"):
            kmodel.get_layer(f"{name}_{norm}").set_weights([t[p + norm + ".weight"], t[p + norm + ".bias"]])
        qkv_w, qkv_b = t[p + "attn.qkv.weight"].reshape(3, dim, dim), t[p + "attn.qkv.bias"].reshape(3, heads, -1)
        # Keras keeps query/key/value kernels as [dim, heads, head_dim] and the output's as [heads, head_dim, dim]
        weights = [w for j in range(3) for w in (qkv_w[j].T.reshape(dim, heads, -1), qkv_b[j])]
        weights += [t[p + "attn.proj.weight"].T.reshape(heads, -1, dim), t[p + "attn.proj.bias"]]
        kmodel.get_layer(f"{name}_attn").set_weights(weights)
        for fc in ("fc1", "fc2"):
            kmodel.get_layer(f"{name}_mlp_{fc}").set_weights([t[p + f"mlp.{fc}.weight"].T, t[p + f"mlp.{fc}.bias"]])
    kmodel.get_layer("attention_norm").set_weights([t["features.attention.norm.weight"],
                                                    t["features.attention.norm.bias"]])
    kmodel.get_layer("head_dense").set_weights([t["head.2.weight"].T, t["head.2.bias"]])
    return kmodel


@needs_keras
def test_keras_and_pytorch_with_the_same_weights_give_the_same_attention_maps(data_dir):
    from mnistlab.explain.torch_backend import TorchExplainer
    from mnistlab.frameworks.keras.explain import KerasExplainer

    torch.manual_seed(0)
    tmodel = create_model("selfattention").eval()
    with torch.no_grad():  # no zero-initialised branch, batch norm statistics not PyTorch's defaults: all copied
        for p in tmodel.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for bn in (m for m in tmodel.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2)
    t_ex, k_ex = TorchExplainer(tmodel, MNIST), KerasExplainer(_keras_twin_with_torch_weights(tmodel), MNIST)
    for image in _digits(data_dir, 2):
        np.testing.assert_allclose(k_ex.probabilities(image), t_ex.probabilities(image), atol=1e-5)
        t_maps, k_maps = t_ex.attention_maps(image), k_ex.attention_maps(image)
        assert [n for n, _ in t_maps] == ["features.attention.blocks.0.attn", "features.attention.blocks.1.attn"]
        assert [n for n, _ in k_maps] == ["attention_block0_attn", "attention_block1_attn"]
        for (_, t_w), (_, k_w) in zip(t_maps, k_maps):
            assert t_w.shape == k_w.shape == (4, 49, 49)
            np.testing.assert_allclose(k_w, t_w, atol=1e-5)
    assert k_ex.default_layer() == "attention_grid"  # Grad-CAM's layer: the last map, not the tokens


def _train(framework: str, out, data_dir):
    from mnistlab.config import TrainConfig

    cfg = TrainConfig(arch="selfattention", framework=framework, epochs=1, train_subset=256, val_size=100,
                      batch_size=32, seed=0)  # seconds: the maps need a run, not a good model
    frameworks.get(framework).train(cfg, out, data_dir=str(data_dir), progress=False)


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=[needs_keras, pytest.mark.slow])])
def test_explain_draws_attention_maps_that_differ_between_heads_and_images(framework, tmp_path, data_dir):
    pytest.importorskip("matplotlib")
    if framework == "torch":
        pytest.importorskip("captum")  # the PyTorch explainer's attributions; Keras uses GradientTape
    from PIL import Image

    from mnistlab import runs
    from mnistlab.explain import explain_run

    run = tmp_path / framework
    _train(framework, run, data_dir)
    index = explain_run(run, indices=[0, 1], data_dir=str(data_dir))
    entries = [f for f in index["files"] if f["kind"] == "attention"]
    assert [f["file"] for f in entries] == ["attention_idx0.png", "attention_idx1.png"]
    out = run / "plots" / "interpretability"
    assert json.loads((out / "index.json").read_text())["files"] == index["files"]
    for entry in entries:
        assert entry["heads"] == 4 and entry["grid"] == 7 and len(entry["layers"]) == 2
        assert entry["queries"][0] == {"name": "centre", "row": 3, "col": 3}
        assert [q["name"] for q in entry["queries"]] == ["centre", "stroke end"]
        with Image.open(out / entry["file"]) as img:
            assert img.size[0] > 500 and img.size[1] > 500
    from mnistlab.report.html import _captions  # the report shows every figure, titled by these captions

    captions = _captions(run, Path("plots") / "interpretability" / "index.json")
    assert captions["attention_idx1.png"].startswith("self-attention of test #1")
    files = [(out / f["file"]).read_bytes() for f in entries]
    assert files[0] != files[1]
    config = runs.read_config(run)
    explainer = frameworks.for_run(config, run).explainer_for(run, config)
    a, b = (explainer.attention_maps(image) for image in _digits(data_dir, 2))
    for (_, wa), (_, wb) in zip(a, b):
        assert np.abs(wa - wb).max() > 1e-3  # the two images' maps differ ...
        assert min(np.abs(wa[h] - wa[g]).max() for h in range(4) for g in range(h)) > 1e-3  # ... and so do the heads


def test_bf16_autocast_trains_the_attention_model_like_float32():
    """`--amp` on a CPU runs the step under bf16 autocast: the attention blocks must run in it and learn."""
    torch.manual_seed(0)
    model = create_model("selfattention")
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    with torch.no_grad():
        reference = model.eval()(x)
    seen: list[torch.dtype] = []
    from mnistlab.models.selfattention import GridSelfAttention

    grid = next(m for m in model.modules() if isinstance(m, GridSelfAttention))
    linear = next(m for m in grid.blocks[0].modules() if isinstance(m, torch.nn.Linear))  # a projection in the block
    hook = linear.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        low = model(x)
    hook.remove()
    assert seen and seen[0] == torch.bfloat16  # the attention block itself ran in bf16
    torch.testing.assert_close(low.float(), reference, atol=0.15, rtol=0.05)  # bf16 keeps ~3 digits

    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):  # one batch, learnt by heart: the loss must fall under autocast
        optimiser.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
