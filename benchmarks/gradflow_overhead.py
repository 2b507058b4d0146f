"""Cost of the gradient-flow monitor: training samples/s with and without ``GradNormMonitor.step()``.

    MNISTLAB_DATA_DIR=... python benchmarks/gradflow_overhead.py --batches 40 --repeats 5

Runs the trainer's inner step (forward, cross-entropy, backward, Adam step; channels_last, batch
128, real MNIST images) for each architecture, alternating runs with and without the monitor so
that load changes on the machine hit both alike, and prints the median samples/s of each. It also
times ``step()`` itself inside the monitored runs: its share of the step time is the overhead
figure that stays meaningful on a loaded machine, where samples/s swing by tens of percent.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from mnistlab.data.datasets import get_dataset_info, load_split
from mnistlab.frameworks.pytorch import normalize_images
from mnistlab.training.gradflow import GradNormMonitor
from mnistlab.models import create_model, list_models


def samples_per_s(model, opt, x, y, batch: int, monitor: GradNormMonitor | None) -> tuple[float, float]:
    """(samples/s, fraction of the time spent in ``monitor.step()``)."""
    model.train()
    in_monitor = 0.0
    t0 = time.perf_counter()
    for start in range(0, len(y), batch):
        xb = x[start: start + batch].contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(xb), y[start: start + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if monitor is not None:
            t1 = time.perf_counter()
            monitor.step()
            in_monitor += time.perf_counter() - t1
        opt.step()
    total = time.perf_counter() - t0
    return len(y) / total, in_monitor / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = get_dataset_info("mnist")
    images, labels = load_split("mnist", "train")
    n = args.batches * args.batch_size
    x = normalize_images(images[:n], {"mean": info.mean, "std": info.std})
    y = labels[:n]
    print(f"threads {args.threads}, {args.batches} batches of {args.batch_size}, median of {args.repeats}")
    print(f"{'arch':<8} {'without':>10} {'with':>10} {'diff':>7} {'in step()':>10}")
    for arch in list_models():
        torch.manual_seed(0)
        model = create_model(arch).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        monitor = GradNormMonitor(model, tempfile.mkdtemp())
        samples_per_s(model, opt, x[: 4 * args.batch_size], y[: 4 * args.batch_size], args.batch_size, monitor)
        off, on, share = [], [], []
        for _ in range(args.repeats):
            off.append(samples_per_s(model, opt, x, y, args.batch_size, None)[0])
            rate, fraction = samples_per_s(model, opt, x, y, args.batch_size, monitor)
            on.append(rate)
            share.append(fraction)
        a, b = statistics.median(off), statistics.median(on)
        print(f"{arch:<8} {a:>10,.0f} {b:>10,.0f} {100 * (a - b) / a:>6.1f}% {100 * statistics.median(share):>9.2f}%")


if __name__ == "__main__":
    main()
