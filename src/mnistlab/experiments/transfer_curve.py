"""The transfer curve: test accuracy against the number of labelled target images, per mode.

    >>> from mnistlab.experiments.transfer_curve import parse_subsets
    >>> parse_subsets("100,1000,all")
    [100, 1000, None]

The curve itself trains one run per size, seed and mode (here 2 × 2 × 3), from an MNIST run::

    result = transfer_curve("runs/simple-mnist", "fashion-mnist", [100, 1000], [0, 1], out="runs/curve")

For each labelled-subset size, seed and mode, one transfer run (:func:`~mnistlab.transfer.run.transfer_run`)
into ``<out>/runs/<mode>/n<size>/seed<k>``, evaluated once on the test split (the final
measurement; nothing is chosen from it). Subsets are stratified and nested (each size's images
contain the smaller sizes' images: the same per-class shuffle, cut longer) and drawn after the
fixed validation carve, so every point shares one validation split. A run already evaluated is
reused, so a stopped curve continues where it stopped (``force`` trains everything again). The
points are a fixed grid run by :mod:`mnistlab.sweep.repeats`: ``options=RepeatOptions(workers=K)``
trains K at once, each evaluated by the worker that trained it.

Writes ``curve.md``, ``curve.csv``, ``curve.json`` (every run, the summary, the conditions) and
``curve.png`` to ``<out>``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from mnistlab import runs
from mnistlab.config import TRANSFER_MODES
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.fileio import read_json, write_json, write_text
from mnistlab.maths.spread import mean_std_text, spread
from mnistlab.sweep.members import TransferMember
from mnistlab.sweep.repeats import RepeatOptions, run_members
from mnistlab.transfer.source import open_source

MAX_SUBSETS = 20


def parse_subsets(text: str) -> list[int | None]:
    """``"100,1000,all"`` → ``[100, 1000, None]`` (None: every training image), sorted, each at least 10."""
    values: list[int | None] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "all":
            values.append(None)
        elif part.isdigit() and int(part) >= 10:
            values.append(int(part))
        else:
            raise UserError(f"--subsets {text[:40]!r}: give sizes of at least 10 and 'all', e.g. 100,1000,10000,all")
    if not values or len(values) > MAX_SUBSETS or len(set(values)) != len(values):
        raise UserError(f"--subsets {text[:40]!r}: give 1 to {MAX_SUBSETS} distinct sizes, e.g. 100,1000,all")
    return sorted(values, key=lambda v: float("inf") if v is None else v)


def _label(subset: int | None) -> str:
    return "all" if subset is None else str(subset)


def point_name(mode: str, subset: int | None, seed: int) -> str:
    """A point's run directory under the curve's folder.

    >>> point_name("finetune", None, 2)
    'runs/finetune/nall/seed2'
    """
    return f"runs/{mode}/n{_label(subset)}/seed{seed}"


def _row(member: TransferMember, run_dir: Path, reused: bool) -> dict[str, Any]:
    """One point of the curve as ``curve.json`` lists it, from its evaluated run."""
    config, metrics = runs.read_config(run_dir), read_json(run_dir / runs.METRICS)
    training = read_json(run_dir / runs.TRAINING)
    return {"mode": member.mode, "subset": _label(member.subset), "n_train": config.data.n_train,
            "seed": member.seed, "recipe": config.train.transfer["recipe"], "epochs": config.train.epochs,
            "batch_size": config.train.batch_size, "test_acc": metrics["accuracy"],
            "val_acc": training["best_val_acc"], "train_seconds": training["train_seconds"],
            "reused": reused, "run_dir": str(run_dir)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (subset, mode): mean and sample std of test accuracy over seeds (std None for one seed)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["subset"], r["mode"]), []).append(r)
    out = []
    for (subset, mode), group in groups.items():
        acc = spread(r["test_acc"] for r in group)
        out.append({"subset": subset, "n_train": group[0]["n_train"], "mode": mode, "seeds": len(group),
                    "test_acc_mean": acc["mean"], "test_acc_std": acc["std"],
                    "val_acc_mean": statistics.fmean(r["val_acc"] for r in group),
                    "recipes": ",".join(sorted({r["recipe"] for r in group})),
                    "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in group)})
    return out


def accuracy_text(row: dict[str, Any]) -> str:
    """A summary row's test accuracy in percent, ``"97.12 ± 0.31"`` (``"± —"`` for one seed)."""
    return mean_std_text(row["test_acc_mean"], row["test_acc_std"], digits=2, scale=100)


def markdown(summary: list[dict[str, Any]], modes: Sequence[str]) -> str:
    """Subsets down, modes across: test accuracy (%) mean ± std over seeds."""
    by = {(r["subset"], r["mode"]): r for r in summary}
    subsets = list(dict.fromkeys(r["subset"] for r in summary))
    lines = ["| labelled images | " + " | ".join(modes) + " |", "|---:|" + "---:|" * len(modes)]
    for s in subsets:
        n = next(r["n_train"] for r in summary if r["subset"] == s)
        lines.append(f"| {n:,} | " + " | ".join(accuracy_text(by[(s, m)]) if (s, m) in by else "—" for m in modes) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, Any]], modes: Sequence[str], path: Path, title: str) -> None:
    from mnistlab.analysis.style import PALETTE, figure

    with figure(path, 8, 4.5, title) as fig:
        ax = fig.add_subplot()
        for color, mode in zip(PALETTE, modes):
            pts = sorted((r["n_train"], r) for r in summary if r["mode"] == mode)
            xs = [n for n, _ in pts]
            ys = [100 * r["test_acc_mean"] for _, r in pts]
            err = [100 * (r["test_acc_std"] or 0.0) for _, r in pts]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color=color, label=mode)
        ax.set_xscale("log")
        ax.set_xlabel("labelled target images (log scale)")
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.legend(loc="lower right")


def _csv(summary: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(summary[0]))
    writer.writeheader()
    writer.writerows(summary)
    return buf.getvalue()


def transfer_curve(source_dir: str | Path, to: str, subsets: Sequence[int | None], seeds: Sequence[int], *,
                   out: str | Path, modes: Sequence[str] = tuple(TRANSFER_MODES), epochs: int | None = None,
                   data_dir: str | None = None, force: bool = False, progress: bool = True,
                   threads: int | None = None, options: RepeatOptions | None = None,
                   resume_command: str | None = None) -> dict[str, Any]:
    """Run the curve into ``out``; returns ``{"rows", "summary", "conditions"}`` (also in ``curve.json``)."""
    bad = [m for m in modes if m not in TRANSFER_MODES]
    if bad:
        raise UserError(f"--modes: {bad[0]!r} is not one of {', '.join(TRANSFER_MODES)}")
    source_dir, out = Path(source_dir), Path(out)
    source = open_source(source_dir, to)  # refuses a bad source before anything trains
    t0, previous, points = time.perf_counter(), None, []
    for subset in subsets:
        data = load_train_val(to, data_dir=data_dir, train_subset=subset)
        picked = set(data.train_indices.tolist())
        if previous is not None and not previous <= picked:  # the per-class quotas of a very uneven data set
            raise UserError(f"--subsets: the {_label(subset)}-image subset does not contain the smaller one; "
                            "choose sizes further apart")
        previous = picked
        points += [TransferMember(point_name(mode, subset, seed), source=str(source_dir), to=to, mode=mode,
                                  seed=seed, subset=subset, epochs=epochs, threads=threads)
                   for seed in seeds for mode in modes]
    out.mkdir(parents=True, exist_ok=True)
    states = run_members(points, out, options or RepeatOptions(), what="transfer-curve", data_dir=data_dir,
                         force=force, progress=progress, resume_command=resume_command)
    rows = [_row(p, out / p.name, states[p.name] == "done") for p in points]
    summary = summarise(rows)
    conditions = {"source_run": str(source_dir), "source_sha256": source.sha256,
                  "source_dataset": source.config.dataset,
                  "arch": source.config.arch, "target": to, "seeds": list(seeds), "modes": list(modes),
                  "subsets": [_label(s) for s in subsets], "epochs": epochs or "default budget",
                  "wall_seconds": round(time.perf_counter() - t0, 1),
                  "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "environment": runs.environment()}
    result = {"rows": rows, "summary": summary, "conditions": conditions}
    title = f"{source.config.arch}: {source.config.dataset} → {to}, {len(seeds)} seed(s)"
    write_json(out / "curve.json", result)
    write_text(out / "curve.csv", _csv(summary))
    caption = f"Test accuracy (%), mean ± std over seeds {', '.join(map(str, seeds))}."
    write_text(out / "curve.md", f"### {title}\n\n{caption}\n\n" + markdown(summary, modes))
    plot(summary, modes, out / "curve.png", title)
    return result
