"""Training throughput (samples/s) of every registered architecture, eager PyTorch on this CPU.

    python benchmarks/train_speed.py [--steps 40] [--batch-size 128] [--threads N]

Times full optimiser steps (augmentation, forward, backward, Adam) on random batches after a
warm-up, with and without channels-last memory layout, and prints one row per model. Run it on
an idle machine: other processes sharing the cores distort the figures badly.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from mnistlab.data.augment import RandomAffine
from mnistlab.models import count_parameters, create_model, list_models


def steps_per_second(name: str, steps: int, batch_size: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = create_model(name)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    aug = RandomAffine()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        xb = aug(x, gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(xb), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'model':<10} {'params':>9} {'NCHW samples/s':>15} {'channels-last samples/s':>24}")
    for name in list_models():
        nchw = steps_per_second(name, args.steps, args.batch_size, channels_last=False)
        nhwc = steps_per_second(name, args.steps, args.batch_size, channels_last=True)
        print(f"{name:<10} {count_parameters(create_model(name)):>9,} {nchw:>15,.0f} {nhwc:>24,.0f}", flush=True)


if __name__ == "__main__":
    main()
