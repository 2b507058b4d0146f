"""The main job: verify the data, train the three architectures, evaluate, compare, report.

    >>> from mnistlab.quickstart import quickstart   # doctest: +SKIP
    >>> rows = quickstart("runs/quickstart-demo", smoke=True)   # doctest: +SKIP

The epoch budgets below were chosen by measurement on a 2-core CPU so that the whole job ends in
about 15 minutes there while each model reaches its accuracy target (README, "Benchmarks").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mnistlab import runs
from mnistlab.data import store
from mnistlab.config import TrainConfig
from mnistlab.data.datasets import load_train_val
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.training.trainer import train

ARCHS = ("simple", "deeper", "resnet")
EPOCHS = {"simple": 8, "deeper": 12, "resnet": 12}
SMOKE = dict(epochs=1, train_subset=2000, val_size=1000)
# Monte-Carlo dropout in the report runs 20 passes per image; over all 10,000 test images that
# costs about a minute on 2 cores for `deeper`, so the report estimates it on a fixed slice.
MC_LIMIT, SMOKE_MC_LIMIT = 2000, 500


def quickstart(out: str | Path, *, smoke: bool = False, data_dir: str | None = None,
               seed: int = 0, force: bool = False, progress: bool = True,
               archs: tuple[str, ...] = ARCHS) -> dict[str, Any]:
    """Verify the data, train and evaluate ``archs`` into ``out/<arch>``, write ``out/report.html``.

    Returns ``{"out", "smoke", "total_seconds", "models": [one comparison row per model], "report"}``.
    """
    from mnistlab.report.html import build_report

    t0 = time.perf_counter()
    out = Path(out)
    store.fetch("mnist", data_dir=data_dir)
    log = _stderr_log if progress else (lambda _msg: None)
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
    report = build_report([r["run_dir"] for r in rows], out / "report.html", data_dir=data_dir,
                          mc_limit=SMOKE_MC_LIMIT if smoke else MC_LIMIT, log=log)
    return {"out": str(out), "smoke": smoke, "total_seconds": round(time.perf_counter() - t0, 1),
            "models": rows, "report": str(report)}


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_out() -> Path:
    return runs.default_run_dir("quickstart")
