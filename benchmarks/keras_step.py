"""How to run a Keras training step fastest on this CPU: our tf.function step with and without XLA, or model.fit.

    nice -n 0 python benchmarks/keras_step.py --arch simple --rounds 5

The three variants train their own copy of the model on the same random batches (batch 128) and
take turns, ``--steps`` steps each per round, so background load hits them alike; the first round
(tracing, XLA compilation) is not counted. Prints images/s per variant (median over rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="simple")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from mnistlab.config import TrainConfig
    from mnistlab.frameworks.keras.models import create_keras_model
    from mnistlab.frameworks.keras.runtime import keras, set_threads, tf
    from mnistlab.frameworks.keras.train import Stepper

    set_threads(args.threads)
    keras.utils.set_random_seed(0)
    batch, n = 128, 128 * args.steps
    x = np.random.default_rng(0).standard_normal((n, 28, 28, 1)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, n).astype(np.int64)
    cfg = TrainConfig(arch=args.arch)

    def custom(jit: bool):
        stepper = Stepper(create_keras_model(args.arch), cfg, jit_compile=jit)

        def run() -> None:
            for i in range(0, n, batch):
                stepper.set_hyper(1e-3, 0.9)
                float(stepper.step(tf.constant(x[i: i + batch]), tf.constant(y[i: i + batch]))[0])
        return run

    def fit(jit: bool):
        model = create_keras_model(args.arch)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        return lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)

    variants = {"custom step, XLA": custom(True), "custom step, no XLA": custom(False),
                "model.fit, XLA": fit(True), "model.fit, no XLA": fit(False)}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds + 1):
        for name, run in variants.items():
            t0 = time.perf_counter()
            run()
            if r:  # round 0 traces and compiles
                rates[name].append(n / (time.perf_counter() - t0))
    result = {k: round(statistics.median(v)) for k, v in rates.items()}
    print(json.dumps({"arch": args.arch, "threads": args.threads, "batch": batch, "images_per_s": result,
                      "load_avg": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
