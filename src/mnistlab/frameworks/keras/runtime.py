"""Keras 3 on TensorFlow, set up once: loading a run's model and predicting with it.

    >>> from mnistlab.frameworks.keras.runtime import keras     # Keras 3, configured for mnistlab
    >>> keras.backend.backend()
    'tensorflow'

Importing this module imports TensorFlow (seconds), so nothing in mnistlab imports it until a
Keras run is trained or read: the Keras registry entry (:mod:`mnistlab.frameworks.keras`) loads
it as its predictor on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnistlab.errors import UserError
from mnistlab.frameworks.registry import TABLE
from mnistlab.models import NUM_CLASSES
from mnistlab.runconfig import DataFacts, RunConfig

KERAS = TABLE["keras"]  # this module is a piece of the Keras entry (frameworks.keras), which loads it
KERAS.require_installed()  # a one-line UserError, not an ImportError, without mnistlab[keras]

# The trainer uses tf.GradientTape, so the backend is fixed; TF's C++ INFO/WARNING lines would
# otherwise flood stderr.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise UserError(f"Keras was imported with the {keras.backend.backend()} backend; unset KERAS_BACKEND")

MODEL_FILE = KERAS.model_file


def set_threads(threads: int) -> None:
    """Intra-op threads for TensorFlow (like ``torch.set_num_threads``); only possible before TF starts."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process: the first setting stays
        pass


def to_nhwc(images: np.ndarray, data: DataFacts) -> np.ndarray:
    """uint8 ``[N, H, W]`` or ``[N, C, H, W]`` → normalised float32 ``[N, H, W, C]``, with the run's mean and std."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    x = x[..., None] if x.ndim == 3 else x.transpose(0, 2, 3, 1)
    return (x - data.mean) / data.std


def forward_function(model: "keras.Model") -> Callable[[Any], Any]:
    """A compiled inference call; ``model(x)`` in eager mode costs milliseconds of Python per batch."""
    shape = (None, *model.input_shape[1:])
    return tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec(shape, tf.float32)])


def keras_logits(forward: Callable[[Any], Any], x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits of a normalised NHWC array, computed in chunks."""
    outs = [forward(tf.constant(x[i: i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, NUM_CLASSES), np.float32)


def load_keras_model(run_dir: str | Path) -> "keras.Model":
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: no {MODEL_FILE}; the run did not finish an epoch, train it again")
    try:  # safe_mode: a file from someone else may hold a Lambda layer (Python code); refuse it
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError) as exc:  # Keras refuses a function outside Keras with a TypeError
        raise UserError(f"{path}: refused ({str(exc).splitlines()[0][:120]}); train the run again") from None


def model(run_dir: str | Path) -> "keras.Model":
    """The run's model (what ``Framework.load_model`` gives for Keras runs)."""
    return load_keras_model(run_dir)


def inference_parts(run_dir: Path, config: RunConfig, threads: int) -> tuple[Callable, Callable]:
    """(model call on a prepared batch, uint8 images → prepared batch): what a timing measures apart."""
    set_threads(threads)
    forward = forward_function(load_keras_model(run_dir))
    return (lambda x: forward(x).numpy()), (lambda images: tf.constant(to_nhwc(images, config.data)))


def predictor(run_dir: Path, config: RunConfig) -> Callable[[np.ndarray], np.ndarray]:
    """A function from uint8 images ``[N, 28, 28]`` to logits ``[N, classes]`` for a Keras run."""
    set_threads(config.threads or os.cpu_count() or 1)
    forward = forward_function(load_keras_model(run_dir))
    return lambda images: keras_logits(forward, to_nhwc(images, config.data))

