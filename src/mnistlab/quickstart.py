"""The main job: verify the data, train the three architectures, evaluate, compare.

    >>> from mnistlab.quickstart import quickstart   # doctest: +SKIP
    >>> rows = quickstart("runs/quickstart-demo", smoke=True)   # doctest: +SKIP

The epoch budgets below were chosen by measurement on a 2-core CPU so that the whole job ends in
about 15 minutes there while each model reaches its accuracy target (README, "Benchmarks").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.data.datasets import load_train_val
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.training.trainer import train

ARCHS = ("simple", "deeper", "resnet")
EPOCHS = {"simple": 8, "deeper": 12, "resnet": 12}
SMOKE = dict(epochs=1, train_subset=2000, val_size=1000)


def quickstart(out: str | Path, *, smoke: bool = False, data_dir: str | None = None,
               seed: int = 0, force: bool = False, progress: bool = True,
               archs: tuple[str, ...] = ARCHS) -> list[dict[str, Any]]:
    """Train and evaluate ``archs`` into ``out/<arch>``; return one comparison row per model."""
    out = Path(out)
    rows = []
    for arch in archs:
        overrides = dict(SMOKE) if smoke else {"epochs": EPOCHS.get(arch, 10)}
        cfg = TrainConfig(arch=arch, seed=seed, patience=0, **overrides)
        data = load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed,
                              data_dir=data_dir, train_subset=cfg.train_subset)
        summary = train(cfg, out / arch, data_dir=data_dir, force=force, progress=progress, data=data)
        metrics = evaluate_run(out / arch, data_dir=data_dir)
        rows.append({
            "arch": arch, "run_dir": str(out / arch), "test_accuracy": metrics["accuracy"],
            "val_accuracy": summary["best_val_acc"], "params": metrics["params"],
            "train_seconds": summary["train_seconds"], "epochs": summary["epochs_run"],
            "samples_per_s": summary["samples_per_s"], "model_bytes": metrics["model_bytes"],
            "ece": metrics["ece"],
        })
    return rows


def default_out() -> Path:
    return runs.default_run_dir("quickstart")
