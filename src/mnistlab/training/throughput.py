"""How fast a model trains and evaluates here: a few timed steps, as the budget planner needs them.

Up to ``MEASURE_SECONDS`` per model, on the training data the job loaded::

    from mnistlab.config import TrainConfig
    from mnistlab.data.datasets import load_train_val
    from mnistlab.training.throughput import measure
    from mnistlab.training.trainer import build_torch

    data = load_train_val("mnist")
    measure(TrainConfig(arch="simple"), data, build=build_torch)
    # Speed(train_per_s=3512.0, eval_per_s=11800.0, startup_s=0.9, steps=100, precision="float32")

The model is built by its framework's own ``build`` (the one training uses), fed the loop's own
batches (normalised, augmented as configured) and thrown away; nothing is written. The first
steps pay for one-off work (allocation, kernel selection, Keras's tracing): they are timed
apart, as ``startup_s``, because the real run pays them again once. ``build`` resolves the
run's ``--amp`` as training will (:mod:`mnistlab.training.precision`: under ``auto`` on a
native-bf16 CPU, timed once and cached), so the speed is that of the precision the run will use.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from mnistlab.config import TrainConfig
from mnistlab.data.datasets import TrainValData, normalize
from mnistlab.training import distributed
from mnistlab.training.distributed import DistContext
from mnistlab.training.loop import EVAL_CHUNK, make_augment

WARMUP_STEPS = 3
MEASURE_STEPS = 100   # at most this many timed steps ...
MEASURE_SECONDS = 8.0  # ... or this long, whichever ends first (deeper: ~40 steps on 2 cores)
EVAL_CHUNKS = 2       # timed evaluation chunks of EVAL_CHUNK images, after one untimed


@dataclass(frozen=True)
class Speed:
    """Training and evaluation images per second, and the one-off cost of building and warming up."""

    train_per_s: float
    eval_per_s: float
    startup_s: float
    steps: int
    precision: str = "float32"  # what the steps ran in: bf16, fp16 or float32


def measure(cfg: TrainConfig, data: TrainValData, *, build: Callable[..., tuple[Any, Any]],
            steps: int = MEASURE_STEPS, seconds: float = MEASURE_SECONDS, cpu_only: bool = False) -> Speed:
    """Time ``cfg``'s model: up to ``steps`` training steps (or ``seconds``), then evaluation chunks.

    ``cpu_only``: the framework trains on the CPU only (its registry entry says so), so time it there.
    """
    if cpu_only:
        cfg = dataclasses.replace(cfg, device="cpu")
    _, device = distributed.on_device(DistContext(), cfg.device)
    threads = cfg.threads or torch.get_num_threads()
    t0 = time.perf_counter()
    step, _ = build(dataclasses.replace(cfg, epochs=1), data, device, DistContext(), None, threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    augment = make_augment(cfg, data)
    x_all, y_all = data.train_x.to(device), data.train_y.to(device)

    def one_step() -> None:
        idx = torch.randint(len(y_all), (cfg.batch_size,), generator=gen).to(device)
        xb = normalize(x_all[idx], data.info.mean, data.info.std)
        _, correct = step.train_batch(augment(xb, gen) if augment is not None else xb, y_all[idx])
        float(correct)  # wait for the device

    step.begin_epoch(1, cfg.seed)
    for _ in range(WARMUP_STEPS):
        one_step()
    startup = time.perf_counter() - t0
    t1, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - t1 < seconds):
        one_step()
        done += 1
    train_per_s = done * cfg.batch_size / (time.perf_counter() - t1)
    val = normalize(data.val_x[:EVAL_CHUNK].to(device), data.info.mean, data.info.std)
    step.logits(val)  # untimed: the first evaluation pass picks its kernels
    t2 = time.perf_counter()
    for _ in range(EVAL_CHUNKS):
        float(step.logits(val).sum())
    eval_per_s = EVAL_CHUNKS * len(val) / (time.perf_counter() - t2)
    return Speed(round(train_per_s, 1), round(eval_per_s, 1), round(startup, 2), done, step.precision.precision)
