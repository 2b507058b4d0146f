"""A run directory: the config, weights, history and results of one training run.

    >>> from mnistlab.runs import read_config, read_history       # doctest: +SKIP
    >>> read_config("runs/simple-20261125-101500")["arch"]         # doctest: +SKIP
    'simple'

Layout (every later command rebuilds everything from these files alone)::

    config.json          schema_version, kind, framework, dataset, arch, model args,
                         normalisation, class names, training settings, threads, environment
    model.safetensors    the best weights (chosen on the validation split)
    checkpoint.pt        the last epoch's full state, for --resume
    history.csv          one row per epoch
    training.json        summary: best epoch, wall time, samples/s, why training stopped
    predictions.npz      test logits and labels (written once by `mnistlab evaluate`)
    val_predictions.npz  validation logits and labels (for calibration and ensemble weights)
    metrics.json         test metrics computed from predictions.npz

This module knows files, not frameworks: rebuilding a model and predicting live in
:mod:`mnistlab.inference` and :mod:`mnistlab.frameworks`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import __version__
from mnistlab.config import SCHEMA_VERSION
from mnistlab.errors import UserError
from mnistlab.fileio import read_json, write_json, write_text, write_with

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
TRAINING = "training.json"
PREDICTIONS = "predictions.npz"
VAL_PREDICTIONS = "val_predictions.npz"
METRICS = "metrics.json"


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>``: sortable and never the same twice in a second."""
    return Path(root) / f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(path: str | Path, *, force: bool = False) -> Path:
    """Create ``path`` for a new run; an existing run is replaced only with ``force``."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not (path / CONFIG).exists():
            raise UserError(f"{path}: exists and is not a run directory; choose another --out")
        if not force:
            raise UserError(f"{path}: a run already exists there; pass --force to overwrite or --resume to continue it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_commit() -> str | None:
    """The commit of the mnistlab source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Versions and hardware, stored in every config so numbers carry their conditions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "mnistlab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    write_json(run_dir / CONFIG, {"schema_version": SCHEMA_VERSION, **config})


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config, after checking that ``run_dir`` is a run this version can read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory; train one with 'mnistlab train'")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG}); give the folder 'mnistlab train' wrote")
    try:
        config = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path}: unreadable JSON ({exc}); restore it or train again") from None
    version = config.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: schema version {version} is not {SCHEMA_VERSION}; use a matching mnistlab version")
    return config


def weights_path(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """The run's model file: ``model.safetensors``, or what the config names (``model.keras``)."""
    return Path(run_dir) / config.get("model_file", WEIGHTS)


def save_weights(run_dir: Path, model: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_with(run_dir / WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))


def write_history(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / HISTORY, buf.getvalue())


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def save_predictions(path: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, logits=logits.astype(np.float32), labels=labels.astype(np.int64))

    write_with(path, writer)


def load_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name}; run 'mnistlab evaluate {path.parent}' first")
    with np.load(path) as data:
        return data["logits"], data["labels"]
