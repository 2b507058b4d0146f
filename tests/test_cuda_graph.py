"""--cuda-graph: the step a graph captures trains exactly like the eager one; what cannot be captured is refused.

A real capture needs a GPU (benchmarks/gpu_check.sh runs one); here ``EagerCapture`` stands in for
``CudaCapture`` with the same interface, so the static buffers, warm-up, short-batch fallback,
in-place gradient zeroing and the monitor's in-place counters are all exercised on a CPU.
"""

from __future__ import annotations

import logging

import pytest
import torch

from mnistlab.config import TrainConfig, preset
from mnistlab.models import create_model
from mnistlab.training.cuda_graph import EagerCapture, GraphedStep, unsupported
from mnistlab.training.torch_step import TorchStep

SPEEDRUN_LIKE = dict(arch="speedrun", epochs=1, batch_size=32, beta1=0.7, beta2=0.9, lr=1e-2, cuda_graph=True)


def batches(n_batches: int, batch: int, last: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    sizes = [batch] * n_batches + [last]
    return [(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)) for n in sizes]


def make_step(tmp_path, graphed: bool, name: str, epochs: int = 1, steps: int = 7) -> TorchStep:
    torch.manual_seed(0)
    cfg = TrainConfig(**{**SPEEDRUN_LIKE, "epochs": epochs})
    step = TorchStep(create_model("speedrun"), cfg, steps_per_epoch=steps, run_dir=tmp_path / name)
    (tmp_path / name).mkdir()
    if graphed:  # what TorchStep does on a GPU, with a capture that runs eagerly
        step.graphed = GraphedStep(step._step, warmup=2, capture=EagerCapture)
    return step


def test_captured_step_trains_exactly_like_the_eager_step(tmp_path):
    data = batches(6, 32, last=11)
    plain, graphed = make_step(tmp_path, False, "plain"), make_step(tmp_path, True, "graphed")
    for step in (plain, graphed):
        step.begin_epoch(1, seed=1)
        sums = [step.train_batch(x, y) for x, y in data]
        step.sums = [(float(a), int(b)) for a, b in sums]
    assert graphed.graphed.captured and graphed.graphed.shape == (32, 1, 28, 28)
    assert plain.sums == graphed.sums  # per-batch loss and correct counts, short last batch included
    for (name, a), b in zip(plain.model.state_dict().items(), graphed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert plain.opt.param_groups[0]["lr"] == graphed.opt.param_groups[0]["lr"]
    # The gradient monitor counted every batch, the captured ones too, and agrees with the eager run.
    assert plain.end_epoch(1) == graphed.end_epoch(1)
    assert [r["epoch"] for r in graphed.monitor.rows] == [1] * len(graphed.monitor.layers)


def test_monitor_resets_in_place_so_a_graph_keeps_writing_to_its_tensors(tmp_path):
    step = make_step(tmp_path, True, "run", epochs=2, steps=4)
    before = [t.data_ptr() for t in (step.monitor._sum, step.monitor._min, step.monitor._max, step.monitor._batches)]
    for epoch in (1, 2):
        step.begin_epoch(epoch, seed=epoch)
        for x, y in batches(3, 32, last=32, seed=epoch):
            step.train_batch(x, y)
        assert int(step.monitor._batches) == 4
        step.end_epoch(epoch)
        assert int(step.monitor._batches) == 0
    after = [t.data_ptr() for t in (step.monitor._sum, step.monitor._min, step.monitor._max, step.monitor._batches)]
    assert before == after
    assert sorted({r["epoch"] for r in step.monitor.rows}) == [1, 2]


@pytest.mark.parametrize("change, scaled, reason", [
    ({"amp": "on"}, True, "--amp on"), ({"amp": "auto"}, True, "--amp auto"), ({"ema_decay": 0.999}, False, "EMA"),
    ({"beta1": None}, False, "--beta1"),
])
def test_what_a_graph_cannot_capture_is_named(change, scaled, reason):
    cfg = TrainConfig(**{**SPEEDRUN_LIKE, **change})
    assert reason in unsupported(cfg, distributed=False, transfer=False, scaled=scaled)


def test_distributed_and_transfer_runs_are_not_captured():
    cfg = TrainConfig(**SPEEDRUN_LIKE)
    assert unsupported(cfg, distributed=False, transfer=False) is None
    assert "DDP" in unsupported(cfg, distributed=True, transfer=False)
    assert "transfer" in unsupported(cfg, distributed=False, transfer=True)


def test_a_cpu_ignores_the_setting_and_trains_eagerly(caplog):
    with caplog.at_level(logging.WARNING):
        step = TorchStep(create_model("speedrun"), TrainConfig(**{**SPEEDRUN_LIKE, "amp": True}), steps_per_epoch=3)
    assert step.graphed is None and not caplog.records  # no capture on a CPU, and no warning about one
    assert isinstance(step.opt.param_groups[0]["lr"], float)


def test_speedrun_preset_captures_on_a_gpu_and_the_flag_turns_it_off():
    from mnistlab.cli import build_parser

    assert preset("speedrun").cuda_graph and not preset("default").cuda_graph
    args = build_parser().parse_args(["train", "--preset", "speedrun", "--no-cuda-graph"])
    from mnistlab.commands.train import train_config_from_args

    assert train_config_from_args(args).cuda_graph is False


def test_a_failed_capture_warns_and_trains_on_eagerly(caplog):
    class Refuses:
        def __init__(self, fn, x, y):
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    calls = []
    step = GraphedStep(lambda x, y: (calls.append(1) or x.sum(),), warmup=1, capture=Refuses)
    with caplog.at_level(logging.WARNING):
        outs = [float(step(torch.ones(2, 2), torch.ones(2))[0]) for _ in range(4)]
    assert outs == [4.0] * 4 and len(calls) == 4 and not step.captured  # every batch trained once
    assert [r.getMessage() for r in caplog.records] == [
        "warning: CUDA graph capture failed (operation not permitted when stream is capturing); training without it"]
