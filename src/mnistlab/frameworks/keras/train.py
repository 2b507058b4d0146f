"""The Keras trainer: same data, split, augmentation, schedules and run directory as PyTorch's.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.frameworks.keras.train import train                 # doctest: +SKIP
    >>> train(TrainConfig(arch="simple", framework="keras", epochs=1), "runs/k")  # doctest: +SKIP
    {'best_epoch': 1, ...}

Fairness by construction: the batches come from the PyTorch trainer's own generator
(``epoch_generator``: same shuffle, same ``RandomAffine`` draws), converted to NHWC per batch;
learning rates follow PyTorch's OneCycleLR/StepLR formulas exactly (OneCycle also cycles Adam's
beta1 between 0.95 and 0.85, as PyTorch does); ``adam`` adds ``weight_decay × w`` to every
gradient (PyTorch's coupled L2) and ``adamw`` is Keras's AdamW (decoupled, as ``torch.optim.AdamW``).
One known difference: Keras adds Adam's epsilon to √v before the bias correction, PyTorch after.

A custom ``tf.function`` step is used rather than ``model.fit``: it measured faster on this CPU
(benchmarks/keras_step.py) and takes the per-batch learning rate and the PyTorch-generated
batches without a callback per batch.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.data.augment import RandomAffine
from mnistlab.data.datasets import TrainValData, load_train_val
from mnistlab.errors import UserError
from mnistlab.fileio import write_json
from mnistlab.frameworks.keras import MODEL_FILE, forward_function, keras, keras_logits, set_threads, tf
from mnistlab.frameworks.pytorch import build_model, normalize_images
from mnistlab.frameworks.keras.models import create_keras_model, trainable_parameters
from mnistlab.training.progress import EpochProgress
from mnistlab.training.selection import EpochSelector, epoch_row
from mnistlab.training.trainer import TrainingFailed, epoch_generator, run_config

# XLA compilation of the training step: off, because on the 2-core dev machine it made the
# simple model's step ~4× slower (benchmarks/keras_step.py, figures in docs/keras.md).
JIT_COMPILE = False


def learning_rate(cfg: TrainConfig, step: int, epoch: int, steps_per_epoch: int) -> tuple[float, float]:
    """(learning rate, Adam beta1) for batch ``step`` (0-based, counted over the run) in ``epoch`` (1-based).

    OneCycle mirrors ``torch.optim.lr_scheduler.OneCycleLR(pct_start=0.25)`` with its defaults:
    cosine from lr/25 up to lr, then down to lr/25/1e4; beta1 moves 0.95 → 0.85 → 0.95 meanwhile.
    """
    if cfg.scheduler == "step":
        return cfg.lr * cfg.gamma ** ((epoch - 1) // cfg.step_size), 0.9
    if cfg.scheduler == "none":
        return cfg.lr, 0.9
    total = cfg.epochs * steps_per_epoch
    up_end = 0.25 * total - 1
    initial, final = cfg.lr / 25, cfg.lr / 25 / 1e4

    def cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= up_end:
        pct = step / up_end
        return cos(initial, cfg.lr, pct), cos(0.95, 0.85, pct)
    pct = (step - up_end) / (total - 1 - up_end)
    return cos(cfg.lr, final, pct), cos(0.85, 0.95, pct)


def save_model(model: "keras.Model", path: Path) -> None:
    """Atomic ``model.save``: Keras insists on a ``.keras`` suffix, so the temporary file gets one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".keras", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # Keras 3.15 converts TF variables with np.array(copy=False), which NumPy 2 flags; harmless.
            warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
            model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).contiguous().numpy()


class Stepper:
    """The compiled training step, with the optimiser state it updates."""

    def __init__(self, model: "keras.Model", cfg: TrainConfig, jit_compile: bool | None = None):
        self.model, self.vars = model, model.trainable_variables
        eps = 1e-8  # PyTorch's default; Keras's is 1e-7
        if cfg.optimizer == "adamw":
            self.opt = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay, epsilon=eps)
            self.l2 = 0.0
        else:
            self.opt = keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=eps)
            self.l2 = cfg.weight_decay
        # A variable (not a float) so OneCycle can move it without retracing the step.
        self.opt.beta_1 = tf.Variable(0.9, trainable=False, dtype=tf.float32, name="beta_1")
        self.opt.build(self.vars)
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.step = tf.function(self._step, jit_compile=JIT_COMPILE if jit_compile is None else jit_compile)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = self.loss(y, logits)
        grads = tape.gradient(loss, self.vars)
        if self.l2:
            grads = [g + self.l2 * v for g, v in zip(grads, self.vars)]
        self.opt.apply_gradients(zip(grads, self.vars))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int64), y), tf.int64))
        return loss, correct

    def set_hyper(self, lr: float, beta_1: float) -> None:
        self.opt.learning_rate.assign(lr)
        self.opt.beta_1.assign(beta_1)


def evaluate_split(forward, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) on a normalised NHWC split."""
    logits = torch.from_numpy(keras_logits(forward, x))
    labels = torch.from_numpy(y)
    return torch.nn.functional.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def train(cfg: TrainConfig, out: str | Path, *, data_dir: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, data: TrainValData | None = None) -> dict[str, Any]:
    """Train the Keras twin of ``cfg.arch`` into ``out``; returns the same summary as the PyTorch trainer."""
    out = Path(out)
    if resume:
        raise UserError(f"{out}: resuming Keras runs is not supported; train again with --force")
    if getattr(cfg, "amp", False):
        raise UserError("--amp is implemented for PyTorch only; drop it for --framework keras")
    runs.prepare_run_dir(out, force=force)
    threads = cfg.threads or torch.get_num_threads()
    set_threads(threads)
    keras.utils.set_random_seed(cfg.seed)
    if data is None:
        data = load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed,
                              data_dir=data_dir, train_subset=cfg.train_subset)
    norm = {"mean": data.info.mean, "std": data.info.std}
    train_x = normalize_images(data.train_x, norm)  # NCHW torch, for the shared augmentation
    train_y = data.train_y.numpy().astype(np.int64)
    val_x, val_y = _nhwc(normalize_images(data.val_x, norm)), data.val_y.numpy().astype(np.int64)

    dims = dict(in_channels=1, num_classes=data.info.num_classes, image_size=data.info.image_size)
    model = create_keras_model(cfg.arch, **dims, **cfg.model_args)
    config = run_config(cfg, data, build_model({"arch": cfg.arch, "data": dims, "model_args": cfg.model_args}),
                        threads)
    config["environment"].update(keras=keras.__version__, tensorflow=tf.__version__)
    config.update(framework="keras", params=trainable_parameters(model), model_file=MODEL_FILE)
    runs.write_config(out, config)

    stepper, forward = Stepper(model, cfg), forward_function(model)
    steps_per_epoch = math.ceil(len(train_y) / cfg.batch_size)
    augment = RandomAffine(cfg.degrees, cfg.translate, (1 - cfg.scale, 1 + cfg.scale),
                           fill=-data.info.mean / data.info.std) if cfg.augment else None
    history: list[dict[str, float]] = []
    selector = EpochSelector(cfg.monitor, cfg.patience, cfg.epochs)
    elapsed, step = 0.0, 0
    with EpochProgress(f"{cfg.arch} (keras)", enabled=progress) as bar:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            gen = epoch_generator(cfg.seed, epoch)
            order = torch.randperm(len(train_y), generator=gen)
            lr = learning_rate(cfg, step, epoch, steps_per_epoch)[0]
            bar.start_epoch(epoch, cfg.epochs, len(order))
            loss_sum, correct, seen = 0.0, 0, 0
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start: start + cfg.batch_size]
                xb = train_x[idx]
                if augment is not None:
                    xb = augment(xb, gen)
                stepper.set_hyper(*learning_rate(cfg, step, epoch, steps_per_epoch))
                loss, right = stepper.step(tf.constant(_nhwc(xb)), tf.constant(train_y[idx.numpy()]))
                loss = float(loss)
                if not math.isfinite(loss):
                    raise TrainingFailed(f"loss became {loss} at epoch {epoch}; lower --lr")
                step += 1
                loss_sum += loss * len(idx)
                correct += int(right)
                seen += len(idx)
                bar.advance(len(idx), loss_sum / seen, correct / seen, seen / (time.perf_counter() - t0))
            train_seconds = time.perf_counter() - t0
            val_loss, val_acc = evaluate_split(forward, val_x, val_y)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            row = epoch_row(epoch, loss_sum, correct, seen, val_loss, val_acc, lr, seconds, train_seconds)
            history.append(row)
            improved = selector.update(row)
            if improved:
                save_model(model, out / MODEL_FILE)
            runs.write_history(out, history)
            bar.end_epoch(row, " *" if improved else "")
            if selector.done(epoch):
                break

    summary = selector.summary(history, elapsed, resumed=False)
    write_json(out / runs.TRAINING, summary)
    return summary
