"""The source of a transfer run: a finished PyTorch run on another data set, read safely.

    >>> from mnistlab.transfer.source import open_source
    >>> source = open_source("runs/simple", to="fashion-mnist")     # an MNIST run
    >>> record = source.record()        # what the new run's config keeps of its source
    >>> record.run, record.dataset, record.arch, len(record.sha256)
    ('runs/simple', 'mnist', 'simple', 64)
    >>> open_source("runs/simple", to="mnist")     # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mnistlab.errors.UserError: runs/simple: trained on mnist already; transfer goes to another data set ...

The weights are read with safetensors (tensors only, never code, whoever wrote the folder); the
config goes through :func:`mnistlab.runs.read_config`'s validation first. Refused, each in one
line: a Keras run (its weights are a ``.keras`` file with another layout), an ensemble (several
models, no single body), a run without weights, and a source trained on the target data set: its
training images may be the target's validation images (another ``--split-seed``), so every
choice made on validation would be biased. To continue a run on its own data set, use
``mnistlab train --resume`` or train again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from mnistlab import frameworks, runs
from mnistlab.data.datasets import get_dataset_info
from mnistlab.errors import UserError
from mnistlab.runconfig import RunConfig, TransferFrom

MAX_WEIGHTS_BYTES = 200 * 1024 * 1024  # runconfig's MAX_PARAMS of float32 weights


@dataclass
class Source:
    """A source run: where it is, its validated config, its weights and their SHA-256."""

    run_dir: Path
    config: RunConfig
    state: dict[str, torch.Tensor]
    sha256: str

    def record(self, initialised: str = "body") -> TransferFrom:
        """The new run's ``transfer_from`` (``initialised``: ``body`` or ``random`` for scratch)."""
        return TransferFrom(run=str(self.run_dir), sha256=self.sha256, dataset=self.config.dataset,
                            arch=self.config.arch, initialised=initialised)


def open_source(run_dir: str | Path, to: str) -> Source:
    """Check and read the run at ``run_dir`` as the source of a transfer to the data set ``to``."""
    from safetensors.torch import load

    run_dir = Path(run_dir)
    target = get_dataset_info(to)
    config = runs.read_config(run_dir)
    if config.is_ensemble:
        raise UserError(f"{run_dir}: an ensemble has no single body to transfer; give one of its member runs")
    if not frameworks.of_run(config, run_dir).can("transfer"):
        raise UserError(f"{run_dir}: a {config.framework} run; transfer starts from a PyTorch run "
                        f"(train one with 'mnistlab train --arch {config.arch}')")
    if config.dataset == to:
        raise UserError(f"{run_dir}: trained on {to} already; transfer goes to another data set "
                        "(to continue on the same data use 'mnistlab train --resume' or train again)")
    data = config.data
    if (data.image_size, data.in_channels) != (target.image_size, target.in_channels):
        raise UserError(f"{run_dir}: its model takes {data.in_channels}×{data.image_size}² images, "
                        f"{to} has {target.in_channels}×{target.image_size}²; choose a source trained on images "
                        "of that size")
    weights = run_dir / runs.WEIGHTS
    if not weights.is_file():
        raise UserError(f"{run_dir}: no weights ({runs.WEIGHTS}); the run did not finish an epoch, train it again")
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise UserError(f"{weights}: {weights.stat().st_size:,} bytes is over {MAX_WEIGHTS_BYTES:,}; "
                        "not a model this tool trains")
    raw = weights.read_bytes()  # one read: the bytes hashed are the bytes loaded
    try:
        state = load(raw)
    except Exception as exc:  # safetensors raises several types for damaged files
        raise UserError(f"{weights}: cannot load weights ({str(exc)[:100]}); train the source run again") from None
    return Source(run_dir, config, state, hashlib.sha256(raw).hexdigest())
