"""The Keras trainer: the Keras step on the shared epoch loop, with PyTorch's batches and schedules.

One epoch on all of MNIST (``mnistlab train --framework keras``; ``mnistlab.train`` does the same)::

    from mnistlab.config import TrainConfig
    from mnistlab.frameworks.keras.train import train

    train(TrainConfig(arch="simple", framework="keras", epochs=1), "runs/k")   # {'best_epoch': 1, ...}

Fairness by construction: the loop (:mod:`mnistlab.training.loop`) hands this step the very
batches PyTorch gets (same shuffle, same ``RandomAffine`` draws), converted to NHWC per batch;
learning rates follow PyTorch's OneCycleLR/StepLR formulas exactly (OneCycle also cycles Adam's
beta1 between 0.95 and 0.85, as PyTorch does); ``adam`` adds ``weight_decay × w`` to every
gradient (PyTorch's coupled L2) and ``adamw`` is Keras's AdamW (decoupled, as ``torch.optim.AdamW``).
One known difference: Keras adds Adam's epsilon to √v before the bias correction, PyTorch after.

Parity with PyTorch: ``--resume`` (the checkpoint holds every model variable, dropout seed
states included, and the optimiser's variables) and ``--amp on`` (Keras's ``mixed_bfloat16``
policy; ``model.keras`` is saved in float32 so every reader gets float32 logits). ``--amp auto``
keeps float32: TensorFlow's bf16 training speed has not been timed on a native-bf16 CPU, and
PyTorch's timing says nothing about TensorFlow's kernels (:mod:`mnistlab.training.precision`). Not here:
CUDA (the TensorFlow wheel is CPU-only) and several processes (torchrun drives PyTorch only).

A custom ``tf.function`` step is used rather than ``model.fit``: it measured faster on this CPU
(benchmarks/keras_step.py) and takes the per-batch learning rate and the loop's batches
without a callback per batch.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mnistlab.config import (ONECYCLE_BETA1, ONECYCLE_DIV_FACTOR, ONECYCLE_FINAL_DIV_FACTOR, ONECYCLE_PCT_START,
                             TrainConfig)
from mnistlab.data.datasets import TrainValData
from mnistlab.errors import UserError
from mnistlab.fileio import write_with
from mnistlab.frameworks.keras.models import create_keras_model, trainable_parameters
from mnistlab.frameworks.keras.runtime import MODEL_FILE, forward_function, keras, keras_logits, set_threads, tf
from mnistlab.frameworks.registry import TABLE
from mnistlab.runconfig import RunConfig
from mnistlab.training.distributed import DistContext
from mnistlab.training.fit import fit, run_config
from mnistlab.training.loop import steps_per_epoch
from mnistlab.training.precision import Precision, resolve

KERAS = TABLE["keras"]  # this module is a piece of the Keras entry (frameworks.keras), which loads it

# XLA compilation of the training step: off, because on the 2-core dev machine it made the
# simple model's step ~4× slower (benchmarks/keras_step.py, figures in docs/keras.md).
JIT_COMPILE = False
AMP_POLICY = "mixed_bfloat16"


def learning_rate(cfg: TrainConfig, step: int, epoch: int, steps_per_epoch: int) -> tuple[float, float]:
    """(learning rate, Adam beta1) for batch ``step`` (0-based, counted over the run) in ``epoch`` (1-based).

    OneCycle mirrors ``torch.optim.lr_scheduler.OneCycleLR`` with the settings in ``mnistlab.config``:
    cosine from lr/25 up to lr, then down to lr/25/1e4; beta1 moves 0.95 → 0.85 → 0.95 meanwhile
    (a fixed ``cfg.beta1`` stays fixed, as PyTorch's ``cycle_momentum=False``).
    """
    fixed_beta1 = 0.9 if cfg.beta1 is None else cfg.beta1
    if cfg.scheduler == "step":
        return cfg.lr * cfg.gamma ** ((epoch - 1) // cfg.step_size), fixed_beta1
    if cfg.scheduler == "none":
        return cfg.lr, fixed_beta1
    total = cfg.epochs * steps_per_epoch
    up_end = ONECYCLE_PCT_START * total - 1
    initial = cfg.lr / ONECYCLE_DIV_FACTOR
    final = initial / ONECYCLE_FINAL_DIV_FACTOR
    beta_ends, beta_peak = ONECYCLE_BETA1

    def cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    if cfg.beta1 is not None:
        beta_ends = beta_peak = cfg.beta1
    if step <= up_end:
        pct = step / up_end
        return cos(initial, cfg.lr, pct), cos(beta_ends, beta_peak, pct)
    pct = (step - up_end) / (total - 1 - up_end)
    return cos(cfg.lr, final, pct), cos(beta_peak, beta_ends, pct)


def save_model(model: "keras.Model", path: Path) -> None:
    """Atomic ``model.save``: Keras insists on a ``.keras`` suffix, so the temporary file gets one."""
    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            # Keras 3.15 converts TF variables with np.array(copy=False), which NumPy 2 flags; harmless.
            warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
            model.save(tmp)

    write_with(path, save, suffix=".keras")


class Stepper:
    """The compiled training step, with the optimiser state it updates."""

    def __init__(self, model: "keras.Model", cfg: TrainConfig, jit_compile: bool | None = None):
        self.model, self.vars = model, model.trainable_variables
        eps = 1e-8  # PyTorch's default; Keras's is 1e-7
        if cfg.optimizer == "adamw":
            self.opt = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay, epsilon=eps,
                                              beta_2=cfg.beta2)
            self.l2 = 0.0
        else:
            self.opt = keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=eps, beta_2=cfg.beta2)
            self.l2 = cfg.weight_decay
        # A variable (not a float) so OneCycle can move it without retracing the step.
        self.opt.beta_1 = tf.Variable(0.9, trainable=False, dtype=tf.float32, name="beta_1")
        self.opt.build(self.vars)
        self.smoothing = cfg.label_smoothing
        self.loss = (keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)
                     if cfg.label_smoothing else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.step = tf.function(self._step, jit_compile=JIT_COMPILE if jit_compile is None else jit_compile)

    def _step(self, x, y):
        with tf.GradientTape() as tape:
            # float32 logits even under mixed_bfloat16: the loss and its gradient stay accurate
            logits = tf.cast(self.model(x, training=True), tf.float32)
            loss = self.loss(tf.one_hot(y, logits.shape[-1]) if self.smoothing else y, logits)
        grads = tape.gradient(loss, self.vars)
        if self.l2:
            grads = [g + self.l2 * v for g, v in zip(grads, self.vars)]
        self.opt.apply_gradients(zip(grads, self.vars))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int64), y), tf.int64))
        # Gradient L2 norms of the kernels (the weights PyTorch's GradNormMonitor watches too).
        norms = tf.stack([tf.norm(g) for g, v in zip(grads, self.vars) if len(v.shape) > 1] or [tf.zeros(())])
        return loss, correct, norms

    def set_hyper(self, lr: float, beta_1: float) -> None:
        self.opt.learning_rate.assign(lr)
        self.opt.beta_1.assign(beta_1)


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class KerasStep:
    """A Keras model and its :class:`Stepper` as a :class:`~mnistlab.training.loop.Step`."""

    def __init__(self, cfg: TrainConfig, model: "keras.Model", steps_per_epoch: int,
                 float32_twin: Callable[[], "keras.Model"], precision: Precision):
        self.cfg, self.model, self.steps_per_epoch, self.precision = cfg, model, steps_per_epoch, precision
        self.label = f"{cfg.arch} (keras)"
        self.stepper, self.forward = Stepper(model, cfg), forward_function(model)
        self.float32_twin = float32_twin
        self.step, self.epoch = 0, 1
        self.layers = [v.path.rsplit("/", 1)[0] for v in model.trainable_variables if len(v.shape) > 1]
        self._norm_sum, self._batches = 0.0, 0

    def begin_epoch(self, epoch: int, seed: int) -> float:
        # Dropout draws from the layers' seed-generator variables, saved with the checkpoint.
        self.epoch = epoch
        return learning_rate(self.cfg, self.step, epoch, self.steps_per_epoch)[0]

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        self.stepper.set_hyper(*learning_rate(self.cfg, self.step, self.epoch, self.steps_per_epoch))
        loss, right, norms = self.stepper.step(tf.constant(_nhwc(x)), tf.constant(y.cpu().numpy()))
        self._norm_sum, self._batches = self._norm_sum + norms.numpy(), self._batches + 1
        self.step += 1
        return float(loss) * len(y), int(right)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """The epoch's mean gradient norm per layer (for TensorBoard; grad_norms.csv is PyTorch's)."""
        means = np.atleast_1d(self._norm_sum / max(1, self._batches))
        self._norm_sum, self._batches = 0.0, 0
        return {name: float(m) for name, m in zip(self.layers, means)}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(keras_logits(self.forward, _nhwc(x)), dtype=np.float32))

    def state(self) -> dict[str, Any]:
        as_tensors = lambda variables: [torch.from_numpy(np.array(v.numpy())) for v in variables]  # noqa: E731
        return {"variables": as_tensors(self.model.variables), "optimizer": as_tensors(self.stepper.opt.variables),
                "step": self.step}

    def load_state(self, state: dict[str, Any]) -> None:
        for key, variables in (("variables", self.model.variables), ("optimizer", self.stepper.opt.variables)):
            if len(state[key]) != len(variables):
                raise UserError(f"checkpoint holds {len(state[key])} {key}, the model {len(variables)}; "
                                "train the run again with --force")
            for var, value in zip(variables, state[key]):
                var.assign(value.numpy())
        self.step = int(state["step"])

    def save_best(self, run_dir: Path) -> None:
        model = self.model
        if self.precision.autocast:
            model = self.float32_twin()
            model.set_weights(self.model.get_weights())
        save_model(model, run_dir / MODEL_FILE)


def build_keras(cfg: TrainConfig, data: TrainValData, device: torch.device, ctx: DistContext,
                run_dir: Path | None, threads: int) -> tuple[KerasStep, RunConfig]:
    """The Keras twin of ``cfg.arch`` and its step, with the run's config."""
    if ctx.active:
        raise UserError("several processes (torchrun, --nproc) train PyTorch runs only; drop them for --framework keras")
    if device.type != "cpu":
        raise UserError("Keras trains on the CPU here (tensorflow-cpu); use --device cpu or auto")
    set_threads(threads)
    keras.utils.set_random_seed(cfg.seed)
    dims = dict(in_channels=data.info.in_channels, num_classes=data.info.num_classes, image_size=data.info.image_size)
    precision = resolve(cfg.amp, device.type, who=KERAS.label)  # no timer: auto keeps float32 (see above)
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(AMP_POLICY if precision.autocast else "float32")
    try:
        model = create_keras_model(cfg.arch, **dims, **cfg.model_args)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    step = KerasStep(cfg, model, steps_per_epoch(len(data.train_y), cfg.batch_size),
                     lambda: create_keras_model(cfg.arch, **dims, **cfg.model_args), precision)
    config = run_config(cfg, data, trainable_parameters(model), threads, framework=KERAS.name,
                        model_file=KERAS.model_file)
    versions = {**config.environment, "keras": keras.__version__, "tensorflow": tf.__version__}
    return step, dataclasses.replace(config, environment=versions)


def train(cfg: TrainConfig, out: str | Path, *, data_dir: str | None = None, resume: bool = False,
          force: bool = False, progress: bool = True, data: TrainValData | None = None,
          stop_when: Callable[[dict[str, float]], str | None] | None = None,
          config_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the Keras twin of ``cfg.arch`` into ``out`` (or continue it with ``resume``); the same summary as PyTorch's."""
    if cfg is not None and not resume and cfg.device == "auto":
        cfg = dataclasses.replace(cfg, device="cpu")  # recorded as such: a resume elsewhere stays on the CPU
    return fit(cfg, out, build=build_keras, framework=KERAS.name, data_dir=data_dir, resume=resume, force=force,
               progress=progress, data=data, stop_when=stop_when, config_extra=config_extra)


build = build_keras  # the name every framework's trainer module gives its step builder (Framework.build)
