"""`--preset best` and its parts: the presets resolve to the documented settings, the EMA of the
weights is what is validated, saved and resumed, random erasing hides one rectangle per image."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from mnistlab import frameworks, runs
from mnistlab.cli import build_parser
from mnistlab.commands.train import train_config_from_args
from mnistlab.config import PRESETS, TrainConfig, preset
from mnistlab.data.augment import RandomAffine, RandomErasing
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.frameworks.pytorch import load_model
from mnistlab.models import create_model
from mnistlab.training.ema import WeightEMA
from mnistlab.training.loop import make_augment
from mnistlab.training.torch_step import TorchStep
from mnistlab.training.trainer import train

# What docs/quickstart.md promises for `--preset best`.
BEST = dict(arch="deeper", epochs=36, scheduler="onecycle", lr=3e-3, patience=0, monitor="val_loss", degrees=10.0,
            translate=0.1, scale=0.1, erasing=0.0, ema_decay=0.0)
TINY = dict(arch="simple", epochs=2, train_subset=1000, val_size=300, batch_size=64, seed=1)


def test_presets_resolve_to_the_documented_settings():
    assert preset("default") == TrainConfig()
    best = preset("best")
    assert {k: getattr(best, k) for k in BEST} == BEST
    assert (best.augment, best.optimizer, best.batch_size) == (True, "adam", 128)  # the defaults, kept
    seed = preset("seed")
    assert (seed.scheduler, seed.lr, seed.weight_decay, seed.epochs, seed.erasing, seed.ema_decay) == (
        "step", 1e-3, 1e-3, 20, 0.0, 0.0)
    assert sorted(PRESETS) == ["best", "default", "seed", "speedrun"]


def test_cli_best_preset_needs_no_arch_and_flags_override_it():
    parse = build_parser().parse_args
    cfg = train_config_from_args(parse(["train", "--preset", "best"]))
    assert (cfg.arch, cfg.epochs, cfg.ema_decay, cfg.erasing) == ("deeper", 36, 0.0, 0.0)
    cfg = train_config_from_args(parse(["train", "--preset", "best", "--arch", "resnet", "--epochs", "3",
                                        "--ema-decay", "0.999", "--erasing", "0.5", "--degrees", "15"]))
    assert (cfg.arch, cfg.epochs, cfg.ema_decay, cfg.erasing, cfg.degrees) == ("resnet", 3, 0.999, 0.5, 15.0)


@pytest.mark.parametrize("bad", [dict(erasing=1.5), dict(erasing=-0.1), dict(ema_decay=1.0), dict(ema_decay=-0.5)])
def test_bad_ema_or_erasing_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


def test_ema_on_keras_is_refused_before_training(tmp_path):
    cfg = TrainConfig(ema_decay=0.99, framework="keras")  # a framework's settings are its registry entry's to check
    with pytest.raises(UserError, match="--ema-decay is PyTorch-only"):
        frameworks.check_name("keras").train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("decay, used", [(0.05, 0.05), (0.999, 0.1)])  # 0.1: the warm-up's (1 + 0) / (10 + 0)
def test_ema_follows_the_documented_average(decay, used):
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 2.0)
    ema = WeightEMA(model, decay=decay)
    ema.update(model)  # the first update copies
    nn.init.constant_(model.weight, 6.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(used * 2.0 + (1 - used) * 6.0)
    for _ in range(2000):  # long after the warm-up, the decay is the one asked for
        ema.update(model)
    assert ema.decay_at(100_000) == decay and ema.module.weight.item() == pytest.approx(6.0)


def test_the_ema_is_what_is_validated_and_saved(tmp_path):
    torch.manual_seed(0)
    step = TorchStep(create_model("simple"), TrainConfig(ema_decay=0.9, epochs=1), steps_per_epoch=5)
    step.begin_epoch(1, seed=1)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(5):
        step.train_batch(x, y)
    raw, averaged = step.model.state_dict(), step.ema.module.state_dict()
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw if raw[k].is_floating_point())
    step.ema.module.eval()
    with torch.no_grad():
        expected = step.ema.module(x[:4].contiguous(memory_format=torch.channels_last))
    assert torch.allclose(step.logits(x[:4]), expected)
    step.save_best(tmp_path)
    saved = load_file(str(tmp_path / runs.WEIGHTS))
    for name, value in averaged.items():
        assert torch.equal(saved[name], value), name


def test_resume_with_ema_matches_an_uninterrupted_run(tmp_path, data_dir, kill_after_first_epoch):
    cfg = TrainConfig(**TINY, ema_decay=0.9, erasing=0.5)
    full = train(cfg, tmp_path / "full", progress=False)
    kill_after_first_epoch(train, cfg, tmp_path / "killed")
    resumed = train(None, tmp_path / "killed", resume=True, progress=False)
    assert resumed["best_val_loss"] == pytest.approx(full["best_val_loss"], abs=1e-6)
    model, config = load_model(tmp_path / "killed")
    assert config.train.ema_decay == 0.9 and config.train.erasing == 0.5
    # A short run still learns with both on (chance is 0.1).
    assert full["best_val_acc"] > 0.5


def test_random_erasing_hides_one_rectangle_per_chosen_image():
    x = torch.ones(64, 1, 28, 28)
    out = RandomErasing(p=1.0, area=(0.05, 0.2), fill=-1.0)(x, torch.Generator().manual_seed(0))
    erased = (out == -1.0).flatten(1).sum(1).float() / (28 * 28)
    assert bool((erased > 0).all()) and float(erased.max()) <= 0.25  # every image, within the area (+ rounding)
    rows = (out[:, 0] == -1.0).any(2).sum(1)
    cols = (out[:, 0] == -1.0).any(1).sum(1)
    assert torch.equal((out == -1.0).flatten(1).sum(1), rows * cols)  # one rectangle, not scattered pixels
    none = RandomErasing(p=0.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(none, x)
    again = RandomErasing(p=1.0, area=(0.05, 0.2), fill=-1.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded: a resumed run replays the same masks


def test_without_erasing_the_augmentation_draws_exactly_as_before(data_dir):
    data = load_train_val("mnist", val_size=100, train_subset=200)
    assert isinstance(make_augment(TrainConfig(), data), RandomAffine)  # old runs replay the same batches
    assert make_augment(TrainConfig(augment=False, erasing=0.5), data) is None  # --no-augment turns all off
