"""The main job: verify the data, train the three architectures (and the Keras twin of `simple`),
evaluate, compare, report.

    >>> from mnistlab.quickstart import quickstart   # doctest: +SKIP
    >>> rows = quickstart("runs/quickstart-demo", smoke=True)   # doctest: +SKIP

The epoch budgets below were fixed in advance and checked by measurement on a 2-core CPU: the
whole job ends within 15 minutes there and each model reaches its accuracy target (README).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mnistlab import runs
from mnistlab.data import store
from mnistlab.config import TrainConfig
from mnistlab.ensemble import ensemble_runs
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.errors import UserError
from mnistlab.frameworks import FRAMEWORKS, require, train_function
from mnistlab.models import list_models

# "framework:arch"; the Keras twin of `simple` runs when the keras extra is installed, so the
# job also compares the two frameworks and their ensemble (the seed's averaged probabilities).
MODELS = ("simple", "deeper", "resnet", "keras:simple")
EPOCHS = {"simple": 8, "deeper": 12, "resnet": 12}
SMOKE = dict(epochs=1, train_subset=2000, val_size=1000)
# Monte-Carlo dropout in the report runs 20 passes per image; over all 10,000 test images that
# costs about a minute on 2 cores for `deeper`, so the report estimates it on a fixed slice.
MC_LIMIT, SMOKE_MC_LIMIT = 2000, 500


def quickstart(out: str | Path, *, smoke: bool = False, data_dir: str | None = None,
               seed: int = 0, force: bool = False, progress: bool = True,
               models: tuple[str, ...] = MODELS) -> dict[str, Any]:
    """Verify the data, train and evaluate ``models`` into ``out/<name>``, write ``out/report.html``.

    Returns ``{"out", "smoke", "total_seconds", "models": [one comparison row per model], "report"}``;
    when a PyTorch and a Keras ``simple`` were trained, one more row is their ensemble.
    """
    from mnistlab.report.html import build_report

    t0 = time.perf_counter()
    out = Path(out)
    store.fetch("mnist", data_dir=data_dir)
    log = _stderr_log if progress else (lambda _msg: None)
    rows = []
    for name, framework, arch in [_parse_model(m) for m in models]:  # every name checked before any work
        try:
            require(framework)
        except UserError as exc:  # an optional framework's extra is missing: the others still run
            log(f"skipping {name}: {exc}")
            continue
        overrides = dict(SMOKE) if smoke else {"epochs": EPOCHS.get(arch, 10)}
        cfg = TrainConfig(arch=arch, framework=framework, seed=seed, patience=0, **overrides)
        run_dir = out / name.replace(":", "-")
        summary = train_function(framework)(cfg, run_dir, data_dir=data_dir, force=force, progress=progress)
        metrics = evaluate_run(run_dir, data_dir=data_dir)
        rows.append({
            "arch": arch, "framework": framework, "run_dir": str(run_dir), "test_accuracy": metrics["accuracy"],
            "val_accuracy": summary["best_val_acc"], "params": metrics["params"],
            "train_seconds": summary["train_seconds"], "epochs": summary["epochs_run"],
            "samples_per_s": summary["samples_per_s"], "model_bytes": metrics["model_bytes"],
            "ece": metrics["ece"],
        })
    report = build_report([r["run_dir"] for r in rows], out / "report.html", data_dir=data_dir,
                          mc_limit=SMOKE_MC_LIMIT if smoke else MC_LIMIT, log=log)
    rows.extend(_framework_ensemble(rows, out, force))
    return {"out": str(out), "smoke": smoke, "total_seconds": round(time.perf_counter() - t0, 1),
            "models": rows, "report": str(report)}


def _parse_model(name: str) -> tuple[str, str, str]:
    """``"keras:simple"`` → (name, "keras", "simple"); a bare name is a PyTorch model."""
    framework, _, arch = name.strip().rpartition(":")
    framework = framework or "torch"
    if framework not in FRAMEWORKS or arch not in list_models():
        raise UserError(f"unknown quickstart model {name!r}; use names from 'mnistlab models', "
                        "with 'keras:' in front for the Keras twin")
    return name.strip(), framework, arch


def _framework_ensemble(rows: list[dict[str, Any]], out: Path, force: bool) -> list[dict[str, Any]]:
    """The PyTorch + Keras `simple` ensemble's row, from saved logits (seconds), when both exist."""
    pair = [r for r in rows if r["arch"] == "simple"]
    if sorted(r["framework"] for r in pair) != sorted(FRAMEWORKS):  # one `simple` per framework
        return []
    result = ensemble_runs([r["run_dir"] for r in pair], out=out / "ensemble-simple", force=force)
    return [{"arch": "simple", "framework": "+".join(FRAMEWORKS), "run_dir": result["run_dir"],
             "test_accuracy": result["accuracy"], "val_accuracy": result["val_accuracy"],
             "params": sum(r["params"] for r in pair), "train_seconds": sum(r["train_seconds"] for r in pair),
             "epochs": None, "samples_per_s": None, "model_bytes": sum(r["model_bytes"] for r in pair),
             "ece": result["ece"]}]


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_out() -> Path:
    return runs.default_run_dir("quickstart")
