"""The speedrun preset and model: documented settings, the optimiser it asks for, a short run's floor."""

import ctypes
import json
import platform
import resource

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnistlab import frameworks, runs
from mnistlab.cli import build_parser
from mnistlab.commands.train import train_config_from_args
from mnistlab.config import TrainConfig, preset
from mnistlab.errors import UserError
from mnistlab.frameworks.pytorch import load_model
from mnistlab.models import count_parameters, create_model
from mnistlab.models.complexity import count_macs
from mnistlab.training.device import keep_freed_memory
from mnistlab.training.torch_step import TorchStep
from mnistlab.training.trainer import train

# What docs/speed.md says the preset is; a change to the recipe must change the docs too.
DOCUMENTED_SPEEDRUN = dict(arch="speedrun", epochs=1, batch_size=256, lr=1e-2, beta1=0.7, beta2=0.9,
                           weight_decay=0.0, label_smoothing=0.1, scheduler="onecycle", augment=False,
                           patience=0, val_size=1000, channels_last=True, amp="off")
DOCUMENTED_SEED = dict(optimizer="adam", lr=1e-3, weight_decay=1e-3, scheduler="step", step_size=7, gamma=0.1,
                       patience=3, batch_size=128, epochs=20, beta1=None, beta2=0.999, label_smoothing=0.0)


@pytest.mark.parametrize("name, expected", [("speedrun", DOCUMENTED_SPEEDRUN), ("seed", DOCUMENTED_SEED)])
def test_presets_resolve_to_documented_settings(name, expected):
    cfg = preset(name)
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_default_preset_is_the_plain_config():
    assert preset("default") == TrainConfig()
    assert TrainConfig().beta1 is None and TrainConfig().label_smoothing == 0.0  # other runs unchanged


def _cli_config(*argv):
    args = build_parser().parse_args(["train", *argv])
    return args, train_config_from_args(args)


def test_cli_preset_names_its_model_and_flags_override_it():
    _, cfg = _cli_config("--preset", "speedrun")
    assert cfg.arch == "speedrun" and cfg.beta1 == 0.7
    _, cfg = _cli_config("--preset", "speedrun", "--arch", "simple", "--beta1", "0.8", "--label-smoothing", "0")
    assert (cfg.arch, cfg.beta1, cfg.label_smoothing, cfg.epochs) == ("simple", 0.8, 0.0, 1)


def test_cli_without_arch_or_a_preset_naming_one_is_a_user_error():
    from mnistlab.commands.train import cmd_train

    args, _ = _cli_config("--preset", "seed")
    with pytest.raises(UserError, match="--arch is required"):
        cmd_train(args)


@pytest.mark.parametrize("bad", [dict(beta1=1.0), dict(beta2=-0.1), dict(label_smoothing=1.0)])
def test_bad_optimiser_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


def _betas_over_steps(cfg: TrainConfig, steps: int = 6) -> list[tuple[float, float]]:
    torch.manual_seed(0)
    step = TorchStep(create_model("speedrun"), cfg, steps_per_epoch=steps)
    step.begin_epoch(1, seed=1)
    seen = []
    for _ in range(steps):
        step.train_batch(torch.randn(4, 1, 28, 28), torch.arange(4))
        seen.append(step.opt.param_groups[0]["betas"])
    return seen


def test_fixed_beta1_is_not_cycled_by_onecycle():
    assert set(_betas_over_steps(preset("speedrun", epochs=1))) == {(0.7, 0.9)}
    cycled = _betas_over_steps(TrainConfig(arch="speedrun", epochs=1))
    assert len({b[0] for b in cycled}) > 1 and {b[1] for b in cycled} == {0.999}


def test_label_smoothing_is_in_the_training_loss_only():
    cfg = preset("speedrun")
    step = TorchStep(create_model("speedrun"), cfg, steps_per_epoch=10)
    step.begin_epoch(1, seed=1)
    x, y = torch.randn(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)
    with torch.no_grad():
        step.model.head[-1].bias[0] += 10.0  # confident and right: plain loss ≈ 0, smoothed loss is not
        logits = step.model(x)
        expected = F.cross_entropy(logits, y, label_smoothing=0.1) * len(y)
    loss, _ = step.train_batch(x, y)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(F.cross_entropy(logits, y)) < 0.01 < float(expected) / len(y)


def test_speedrun_model_size_and_multiply_adds():
    model = create_model("speedrun")
    assert count_parameters(model) == 160_322
    assert model.macs() == 559_360  # conv 57,600 + conv 345,600 + fc 153,600 + fc 2,560
    # the counter on a layout small enough to check by hand: 26·26·2·9 + 2·26·26·10
    tiny = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    assert count_macs(tiny) == 26 * 26 * 2 * 9 + 2 * 26 * 26 * 10


class _Mallinfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33): the allocator's own account of its memory."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc only")
def test_keep_freed_memory_keeps_a_freed_buffer_for_reuse():
    """glibc by default mmaps a 64 MiB buffer and unmaps it on free (above its 32 MiB automatic threshold):
    after keep_freed_memory() the heap serves it, keeps it when freed, and reusing it costs no page faults."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _Mallinfo2
    size = 64 << 20
    assert keep_freed_memory() is True
    start = libc.mallinfo2()
    buffer = libc.malloc(size)
    ctypes.memset(buffer, 1, size)
    mmapped = libc.mallinfo2().hblkhd - start.hblkhd
    libc.free(buffer)
    kept = libc.mallinfo2().fordblks  # free bytes the heap holds on to
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = libc.malloc(size)
    ctypes.memset(buffer, 1, size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    libc.free(buffer)
    # measured without the call (glibc 2.36): mmapped = size + 4 KiB, kept < 1 MiB, faults = 16,385 (one a page)
    assert mmapped < size and kept >= size
    assert faults < size // resource.getpagesize() // 10


def test_speedrun_preset_on_a_subset_reaches_a_floor(tmp_path, data_dir):
    out = tmp_path / "speedrun"
    summary = train(preset("speedrun", train_subset=10_000, seed=0), out, data_dir=str(data_dir), progress=False)
    # 10,000 images, one epoch (39 steps), about a second: 0.945–0.953 on seeds 0–2; broken settings give far less
    assert summary["best_val_acc"] >= 0.92
    config = runs.read_config(out)
    assert config.arch == "speedrun" and config.train.beta1 == 0.7
    model, _ = load_model(out)  # a registered model: rebuilt from the directory alone, like any other
    assert isinstance(model, nn.Module) and json.loads((out / runs.TRAINING).read_text())["epochs_run"] == 1


@pytest.mark.keras
@pytest.mark.skipif(not frameworks.available("keras"), reason="needs mnistlab[keras] (keras + tensorflow-cpu)")
def test_keras_schedule_keeps_a_fixed_beta1_too():
    from mnistlab.frameworks.keras.train import learning_rate

    fixed = [learning_rate(preset("speedrun"), step, 1, 20)[1] for step in range(20)]
    cycled = [learning_rate(TrainConfig(epochs=1), step, 1, 20)[1] for step in range(20)]
    assert set(fixed) == {0.7} and len(set(cycled)) > 1
