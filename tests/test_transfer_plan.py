"""Transfer plans freeze or train exactly the layers they claim (gradients and weights checked); no data needed."""

from __future__ import annotations

import pytest
import torch

from mnistlab import frameworks
from mnistlab.config import TRANSFER_MODES, TrainConfig
from mnistlab.errors import UserError
from mnistlab.models import create_model, list_models
from mnistlab.models.heads import body_and_head, classifier_name, load_body
from mnistlab.training.torch_step import TorchStep
from mnistlab.training.transfer_plan import TransferPlan

PAIRS = [(mode, recipe) for mode, recipes in TRANSFER_MODES.items() for recipe in recipes]


@pytest.mark.parametrize("name", list_models())
def test_the_classifier_of_every_model_makes_the_logits(name):
    """The convention other models must follow: zeroing the named classifier zeroes every logit."""
    model = create_model(name).eval()
    layer = dict(model.named_modules())[classifier_name(model)]
    assert layer.out_features == 10
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        assert model(torch.randn(3, 1, 28, 28)).abs().max() == 0


def test_load_body_copies_every_layer_but_the_classifier():
    torch.manual_seed(0)
    source, target = create_model("resnet"), create_model("resnet")
    keys = load_body(target, source.state_dict())
    head = classifier_name(target)
    assert keys and not any(k.startswith(head + ".") for k in keys)
    for key, value in target.state_dict().items():
        same = torch.equal(value, source.state_dict()[key])
        assert same == (not key.startswith(head + ".")), key
    with pytest.raises(ValueError, match="do not fit"):
        load_body(create_model("simple"), source.state_dict())
    with pytest.raises(ValueError, match="do not fit"):
        load_body(create_model("simple", width=16), create_model("simple").state_dict())


def _step(arch: str, mode: str, recipe: str, epochs: int = 5) -> TorchStep:
    torch.manual_seed(0)
    model = create_model(arch)
    if mode != "scratch":
        load_body(model, create_model(arch).state_dict())
    cfg = TrainConfig(arch=arch, epochs=epochs, scheduler="none", transfer={"mode": mode, "recipe": recipe})
    return TorchStep(model, cfg, steps_per_epoch=4, plan=TransferPlan(model, cfg.transfer, epochs))


def _train_epoch(step: TorchStep, epoch: int) -> tuple[dict, dict]:
    """Weights and buffers before, after one batch of ``epoch``; gradients checked on the way."""
    before = {k: v.clone() for k, v in step.model.state_dict().items()}
    step.begin_epoch(epoch, seed=epoch)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    step.train_batch(x, y)
    return before, {k: v.clone() for k, v in step.model.state_dict().items()}


@pytest.mark.parametrize("arch", ["simple", "deeper"])  # deeper: batch norm and dropout in the body
@pytest.mark.parametrize("mode,recipe", PAIRS)
def test_each_mode_trains_exactly_the_layers_it_claims(arch, mode, recipe):
    step = _step(arch, mode, recipe)
    body, head = body_and_head(step.model)
    frozen_first = recipe in ("frozen", "head-first")
    before, after = _train_epoch(step, 1)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in head)
    for name, p in body:
        assert (p.grad is None) == frozen_first, name
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    head_keys = {n for n, _ in head}
    assert head_keys <= changed
    body_state = set(after) - head_keys  # weights and batch-norm statistics
    if frozen_first:
        assert not changed & body_state, "a frozen body changed (weights or batch-norm statistics)"
    else:
        assert {n for n, _ in body} <= changed
    if recipe == "head-first":  # frozen for the first fifth of 5 epochs, then everything trains
        before, after = _train_epoch(step, 2)
        assert {n for n, _ in body} <= {k for k in after if not torch.equal(before[k], after[k])}
    if recipe == "frozen":  # frozen to the last epoch; the optimiser never even holds the body
        before, after = _train_epoch(step, 5)
        assert not {k for k in after if not torch.equal(before[k], after[k])} & body_state
        held = {id(p) for g in step.opt.param_groups for p in g["params"]}
        assert held == {id(p) for _, p in head}


def test_lower_body_runs_the_body_at_a_third_of_the_rate():
    step = _step("simple", "finetune", "lower-body")
    body_group, head_group = step.opt.param_groups
    assert body_group["lr"] == pytest.approx(head_group["lr"] / 3)
    assert {id(p) for p in head_group["params"]} == {id(p) for _, p in body_and_head(step.model)[1]}


def test_lower_body_keeps_its_ratio_under_onecycle():
    model = create_model("simple")
    cfg = TrainConfig(arch="simple", epochs=2, transfer={"mode": "finetune", "recipe": "lower-body"})
    step = TorchStep(model, cfg, steps_per_epoch=4, plan=TransferPlan(model, cfg.transfer, 2))
    step.begin_epoch(1, seed=1)
    for _ in range(3):
        step.train_batch(torch.randn(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    body_group, head_group = step.opt.param_groups
    assert body_group["lr"] == pytest.approx(head_group["lr"] / 3)


@pytest.mark.parametrize("transfer,message", [
    ({"mode": "finetune"}, "mode, recipe"),
    ({"mode": "copy", "recipe": "all"}, "mode, recipe"),
    ({"mode": ["finetune"], "recipe": "all"}, "mode, recipe"),
    ({"mode": "features", "recipe": "all"}, "frozen"),
    ({"mode": "scratch", "recipe": "head-first"}, "uses the recipe"),
])
def test_a_bad_transfer_setting_is_one_line(transfer, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(transfer=transfer)


def test_transfer_runs_are_pytorch_runs(tmp_path):
    cfg = TrainConfig(framework="keras", transfer={"mode": "finetune", "recipe": "all"})
    with pytest.raises(UserError, match="transfer runs are PyTorch runs"):
        frameworks.check_name("keras").train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
