"""``--amp auto|on|off``: the precision a run trains in, decided once, recorded in training.json.

The CPU's bf16 facts and the timing are faked here: this machine has no native bf16, and no
timing is asserted on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnistlab import cli, runs
from mnistlab.config import DEFAULT_AMP, TrainConfig, check_setting, preset
from mnistlab.training import precision as precision_mod
from mnistlab.training import trainer as trainer_mod
from mnistlab.training.precision import CpuBf16, decide, resolve
from mnistlab.training.trainer import train

AVX2 = CpuBf16("AMD EPYC", None, "AVX2")
AMX = CpuBf16("Intel Xeon Platinum 8480+", "AMX", "AVX512")
FIXTURE = Path(__file__).parent / "fixtures" / "runs" / "train-torch"
TINY = {"arch": "simple", "epochs": 1, "train_subset": 300, "val_size": 100, "batch_size": 64, "threads": 1, "seed": 0}


def no_timing(precision: str) -> float:
    raise AssertionError("nothing may be timed here")


def timer(fp32_s: float, bf16_s: float, calls: list[str] | None = None):
    def seconds(precision: str) -> float:
        if calls is not None:
            calls.append(precision)
        return fp32_s if precision == "float32" else bf16_s

    return seconds


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mnistlab" / precision_mod.CACHE_FILE


@pytest.mark.parametrize(
    "amp, device, cpu, expected",
    [
        ("auto", "cuda", AMX, "fp16"),
        ("on", "cuda", AVX2, "fp16"),
        ("off", "cuda", AMX, "float32"),
        ("on", "cpu", AVX2, "bf16"),
        ("off", "cpu", AMX, "float32"),
        ("auto", "cpu", AVX2, "float32"),
    ],
)
def test_what_each_setting_means_without_a_timing(amp, device, cpu, expected):
    assert decide(amp, device, cpu=cpu, timer=no_timing).precision == expected


def test_auto_on_a_native_cpu_takes_bf16_only_when_clearly_faster():
    fast = decide("auto", "cpu", cpu=AMX, timer=timer(1.0, 0.55))
    assert fast.precision == "bf16" and "1.82×" in fast.reason and "AMX" in fast.reason
    close = decide("auto", "cpu", cpu=AMX, timer=timer(1.0, 0.95))
    assert close.precision == "float32" and "only 1.05×" in close.reason
    untimed = decide("auto", "cpu", cpu=AMX, who="Keras")  # a framework without a timer keeps float32
    assert untimed.precision == "float32" and "Keras" in untimed.reason


def test_detection_falls_back_to_cpuinfo_flags(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.setattr(precision_mod, "_cpuinfo", lambda: ("Some Xeon", {"avx2", "avx512_bf16"}))
    precision_mod.cpu_bf16.cache_clear()
    try:
        cpu = precision_mod.cpu_bf16()
    finally:
        precision_mod.cpu_bf16.cache_clear()
    assert (cpu.model, cpu.native) == ("Some Xeon", "AVX-512 BF16")


def test_the_timed_verdict_is_cached_per_kind_of_run(cache, monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_bf16", lambda: AMX)
    calls: list[str] = []
    first = resolve("auto", "cpu", timer=timer(1.0, 0.5, calls), key="torch | simple | batch 128")
    assert first.precision == "bf16" and calls and "(cached)" not in first.reason
    again = resolve("auto", "cpu", timer=no_timing, key="torch | simple | batch 128")
    assert again.precision == "bf16" and again.reason == first.reason + " (cached)"
    other = resolve("auto", "cpu", timer=timer(1.0, 1.0), key="torch | simple | batch 256")
    assert other.precision == "float32"  # another batch size is timed on its own
    assert len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")  # a damaged cache is timed again, not an error
    assert resolve("auto", "cpu", timer=timer(1.0, 0.5), key="torch | simple | batch 128").precision == "bf16"


def test_amp_takes_old_booleans_new_words_and_the_bare_flag():
    assert DEFAULT_AMP in ("auto", "on", "off") and TrainConfig().amp == DEFAULT_AMP
    assert TrainConfig(amp=True).amp == "on" and TrainConfig(amp=False).amp == "off"
    assert check_setting("amp", True, "x.toml") == "on" and preset("default", amp="auto").amp == "auto"
    parser = cli.build_parser()
    base = ["train", "--arch", "simple"]
    assert parser.parse_args([*base, "--amp"]).amp == "on"
    assert parser.parse_args([*base, "--amp", "--epochs", "2"]).amp == "on"
    assert parser.parse_args([*base, "--amp", "auto"]).amp == "auto"
    assert parser.parse_args([*base, "--no-amp"]).amp == "off"
    assert parser.parse_args(base).amp is None  # no flag: the preset's or the default
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--amp", "fast"])


def test_an_old_run_with_a_boolean_amp_loads_resumes_and_evaluates(tmp_path, data_dir, kill_after_first_epoch):
    from mnistlab.evaluation.evaluate import evaluate_run

    old = json.loads((FIXTURE / runs.CONFIG).read_text())
    old["train"]["amp"] = True
    (tmp_path / "fixture").mkdir()
    (tmp_path / "fixture" / runs.CONFIG).write_text(json.dumps(old))
    assert runs.read_config(tmp_path / "fixture").train.amp == "on"
    run = tmp_path / "old"
    kill_after_first_epoch(train, TrainConfig(**{**TINY, "epochs": 2, "amp": "off"}), run)
    raw = json.loads((run / runs.CONFIG).read_text())
    raw["train"]["amp"] = False  # as every run before --amp auto wrote it
    (run / runs.CONFIG).write_text(json.dumps(raw))
    summary = train(None, run, resume=True, progress=False)
    assert summary["epochs_run"] == 2 and summary["precision"] == "float32"
    assert runs.read_config(run).train.amp == "off"
    assert 0 < evaluate_run(run, data_dir=str(data_dir))["accuracy"] <= 1


def test_auto_on_a_cpu_without_native_bf16_times_nothing(tmp_path, data_dir, monkeypatch, capsys, cache):
    monkeypatch.setattr(precision_mod, "cpu_bf16", lambda: AVX2)
    monkeypatch.setattr(trainer_mod, "torch_timer", lambda *a, **k: no_timing)
    argv = [
        "train",
        "--arch",
        "simple",
        "--amp",
        "auto",
        "--epochs",
        "1",
        "--train-subset",
        "300",
        "--val-size",
        "100",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert cli.main(argv) == 0
    training = json.loads((tmp_path / "run" / runs.TRAINING).read_text())
    assert training["precision"] == "float32" and "no native bf16 (AVX2)" in training["precision_reason"]
    assert "precision: float32 (--amp auto: this CPU has no native bf16 (AVX2); float32)" in capsys.readouterr().out
    assert not cache.exists()


def test_auto_on_a_native_cpu_trains_under_bf16_autocast(tmp_path, data_dir, monkeypatch, cache):
    monkeypatch.setattr(precision_mod, "cpu_bf16", lambda: AMX)
    monkeypatch.setattr(trainer_mod, "torch_timer", lambda *a, **k: timer(1.0, 0.5))
    seen: set[tuple[bool, torch.dtype]] = set()
    real_create = trainer_mod.create_model

    def create_watched(*args, **kw):
        model = real_create(*args, **kw)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda mod, inp, out: seen.add((mod.training, out.dtype)))
        return model

    monkeypatch.setattr(trainer_mod, "create_model", create_watched)
    summary = train(TrainConfig(**TINY, amp="auto"), tmp_path / "run", progress=False)
    assert summary["precision"] == "bf16" and "2.00×" in summary["precision_reason"]
    assert json.loads((tmp_path / "run" / runs.TRAINING).read_text())["precision"] == "bf16"
    assert seen == {(True, torch.bfloat16), (False, torch.float32)}  # trained in bf16, validated in float32
    assert cache.is_file()


def test_the_timer_leaves_the_model_and_the_random_state_alone():
    from mnistlab.models import create_model

    model = create_model("simple")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    seconds = precision_mod.torch_timer(model, (1, 28, 28), 10, batch_size=8, channels_last=True)
    assert seconds("bf16") > 0 and seconds("float32") > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(state, torch.random.get_rng_state())
