"""Training speed with and without mixed precision (``mnistlab train --amp``) on this CPU.

    python benchmarks/amp_speed.py [--archs simple,resnet] [--steps 200] [--batch-size 128] [--threads N]

Times full optimiser steps (augmentation, forward, backward, Adam) on random batches, the way
the trainer runs them: channels-last, and ``torch.autocast("cpu", dtype=torch.bfloat16)`` for
the AMP rows. fp32 and bf16 run in alternating blocks of 20 steps so that a change in machine
load hits both alike; the figure is the median block. Prints a table and, with ``--json``, JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnistlab.data.augment import RandomAffine
from mnistlab.models import create_model

BLOCK = 20


def make_step(arch: str, batch_size: int, amp: bool):
    torch.manual_seed(0)
    model = create_model(arch).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    aug, gen = RandomAffine(), torch.Generator().manual_seed(0)
    x, y = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))

    def step() -> None:
        xb = aug(x, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(xb), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(arch: str, steps: int, batch_size: int) -> dict[str, float]:
    steps_fns = {"fp32": make_step(arch, batch_size, False), "bf16": make_step(arch, batch_size, True)}
    for fn in steps_fns.values():
        for _ in range(5):  # warm-up: oneDNN picks and caches its kernels on the first calls
            fn()
    blocks: dict[str, list[float]] = {k: [] for k in steps_fns}
    for _ in range(max(1, steps // BLOCK)):
        for name, fn in steps_fns.items():
            t0 = time.perf_counter()
            for _ in range(BLOCK):
                fn()
            blocks[name].append(BLOCK * batch_size / (time.perf_counter() - t0))
    fp32, bf16 = statistics.median(blocks["fp32"]), statistics.median(blocks["bf16"])
    return {"arch": arch, "fp32_samples_per_s": round(fp32), "bf16_samples_per_s": round(bf16),
            "bf16_speedup": round(bf16 / fp32, 3), "steps_each": BLOCK * len(blocks["fp32"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="simple,resnet")
    parser.add_argument("--steps", type=int, default=200, help="steps per precision and model")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(a, args.steps, args.batch_size) for a in args.archs.split(",")]
    conditions = {"threads": torch.get_num_threads(), "batch_size": args.batch_size, "torch": torch.__version__,
                  "load_average_1min": round(os.getloadavg()[0], 2),
                  "cpu_bf16": torch.backends.mkldnn.is_available() and "avx512_bf16" in Path("/proc/cpuinfo").read_text()}
    if args.json:
        print(json.dumps({"conditions": conditions, "rows": rows}, indent=2))
        return
    print(f"conditions: {conditions}")
    print(f"{'arch':<8} {'fp32 samples/s':>15} {'bf16 samples/s':>15} {'bf16 / fp32':>12}")
    for r in rows:
        print(f"{r['arch']:<8} {r['fp32_samples_per_s']:>15,} {r['bf16_samples_per_s']:>15,} {r['bf16_speedup']:>12.2f}")


if __name__ == "__main__":
    main()
