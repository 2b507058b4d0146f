"""PyTorch runs: rebuild the model from a run directory, normalise images, compute logits.

    >>> import numpy as np
    >>> from mnistlab.frameworks.pytorch import load_model, normalize_images, torch_logits
    >>> model, config = load_model("runs/simple")        # the nn.Module and its RunConfig
    >>> images = np.zeros((3, 28, 28), np.uint8)         # uint8, as the data set stores them
    >>> torch_logits(model, normalize_images(images, config.data)).shape
    torch.Size([3, 10])

``predictor(run_dir, config)`` is what PyTorch's registry entry (:mod:`mnistlab.frameworks.torch_entry`)
predicts with; everything else here is shared by training, export and explain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mnistlab import runs
from mnistlab.data.datasets import normalize
from mnistlab.errors import UserError
from mnistlab.frameworks.registry import TABLE
from mnistlab.models import NUM_CLASSES, create_model
from mnistlab.runconfig import DataFacts, RunConfig

TORCH = TABLE["torch"]  # this module is a piece of PyTorch's entry (frameworks.torch_entry), which loads it


def build_model(config: RunConfig) -> torch.nn.Module:
    """The untrained PyTorch model a config describes."""
    data = config.data
    return create_model(config.arch, in_channels=data.in_channels, num_classes=data.num_classes,
                        image_size=data.image_size, **config.model_args)


def load_model(run_dir: str | Path) -> tuple[torch.nn.Module, RunConfig]:
    """Rebuild a PyTorch run's model from its directory, in eval mode."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    if config.framework != TORCH.name:  # the registry's own entry: a run of another framework is not ours to load
        raise UserError(f"{run_dir}: a {config.framework} run; this command needs a PyTorch run")
    TORCH.check_run(config, run_dir)
    weights = run_dir / TORCH.model_file
    if not weights.is_file():
        raise UserError(f"{run_dir}: no weights ({TORCH.model_file}); the run did not finish an epoch, train it again")
    model = build_model(config)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise UserError(f"{weights}: cannot load weights ({exc}); train the run again") from None
    return model.eval(), config


def model(run_dir: str | Path) -> torch.nn.Module:
    """The run's model in eval mode (what ``Framework.load_model`` gives for PyTorch runs)."""
    return load_model(run_dir)[0]


def normalize_images(images: torch.Tensor | np.ndarray, data: DataFacts) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` (or ``[N, 1, 28, 28]``) → float32 ``[N, 1, 28, 28]`` with the run's mean/std."""
    return normalize(torch.as_tensor(images), data.mean, data.std)


@torch.no_grad()
def torch_logits(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024,
                 channels_last: bool = True) -> torch.Tensor:
    """Logits of an already normalised batch, computed in chunks, in eval mode."""
    model.eval()
    if channels_last and not _is_channels_last(model):
        model = model.to(memory_format=torch.channels_last)  # once: a served model is called per request
    outs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start: start + batch_size]
        if channels_last:
            chunk = chunk.contiguous(memory_format=torch.channels_last)
        outs.append(model(chunk).float())
    return torch.cat(outs) if outs else torch.empty(0, NUM_CLASSES)


def _is_channels_last(model: torch.nn.Module) -> bool:
    convs = [p for p in model.parameters() if p.dim() == 4]
    return bool(convs) and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


def inference_parts(run_dir: Path, config: RunConfig, threads: int) -> tuple[Callable, Callable]:
    """(model call on a prepared batch, uint8 images → prepared batch): what a timing measures apart."""
    torch.set_num_threads(threads)
    model = load_model(run_dir)[0].to(memory_format=torch.channels_last)  # as the trainer runs it

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    def prepare(images: np.ndarray) -> torch.Tensor:
        return normalize_images(images, config.data).contiguous(memory_format=torch.channels_last)

    return call, prepare


def predictor(run_dir: Path, config: RunConfig) -> Callable[[np.ndarray], np.ndarray]:
    """A function from uint8 images ``[N, 28, 28]`` to logits ``[N, classes]`` for a PyTorch run."""
    model = load_model(run_dir)[0].to(memory_format=torch.channels_last)
    return lambda images: torch_logits(model, normalize_images(images, config.data)).numpy()
