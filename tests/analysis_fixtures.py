"""Fixtures shared by the analysis and report tests: synthetic logits and analysed copies of a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def synthetic():
    """300 examples, 10 classes: logits that are right about 80% of the time, and random images."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    logits = rng.normal(0, 1, (300, 10))
    guess = np.where(rng.random(300) < 0.8, labels, rng.integers(0, 10, 300))
    logits[np.arange(300), guess] += 4.0
    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    return logits, labels, images


def copy_run(src: Path, dst: Path, *, seed: int, accuracy_shift: float = 0.0, keep_analysis: bool = False) -> Path:
    """A copy of ``src`` that claims another seed (and a shifted accuracy), for multi-run tests."""
    skip = () if keep_analysis else ("plots", "analysis.json", "mc_dropout.npz")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    config = json.loads((dst / "config.json").read_text())
    config["train"]["seed"] = seed
    (dst / "config.json").write_text(json.dumps(config))
    metrics = json.loads((dst / "metrics.json").read_text())
    metrics["accuracy"] += accuracy_shift
    (dst / "metrics.json").write_text(json.dumps(metrics))
    return dst


@pytest.fixture(scope="session")
def two_runs(trained_run, tmp_path_factory, data_dir):
    """Two copies of the trained run (seeds 0 and 1) with every plot written (analysed once, copied)."""
    from mnistlab.analysis.analyze import analyze_run

    root = tmp_path_factory.mktemp("analysis")
    a = copy_run(trained_run, root / "simple-a", seed=0)
    analyze_run(a, data_dir=str(data_dir))
    b = copy_run(a, root / "simple-b", seed=1, accuracy_shift=-0.01, keep_analysis=True)
    return a, b
