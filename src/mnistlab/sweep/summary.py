"""A sweep's results: every trial as a row, the best one, in ``summary.md|csv|json``, and Optuna's figures.

    from mnistlab.sweep.summary import write_results
    result = write_results(settings)       # reads the study, writes DIR/summary.*, DIR/*.png
    result.best                            # the best finished trial (a TrialRow) or None

A trial's value is its run's best validation accuracy (a pruned trial's too, read from its
training.json record in the study), never a test number.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnistlab.fileio import write_json, write_text, write_with
from mnistlab.sweep.study import SweepSettings, open_storage, shown_url

SUMMARY_JSON = "summary.json"
# Optuna's matplotlib figures: file name → the function of optuna.visualization.matplotlib
FIGURES = {"optimization_history.png": "plot_optimization_history",
           "param_importances.png": "plot_param_importances",
           "parallel_coordinate.png": "plot_parallel_coordinate"}


@dataclass(frozen=True)
class TrialRow:
    """One trial as the summary lists it."""

    number: int
    state: str  # complete, pruned, failed, running, waiting
    value: float | None  # best validation accuracy
    params: dict[str, Any]
    seconds: float | None
    epochs_run: int | None
    run_dir: str | None
    retry_of: int | None  # the trial this one runs again (its worker died)


@dataclass(frozen=True)
class SweepResult:
    study: str
    storage: str
    out: str
    trials: tuple[TrialRow, ...]
    best: TrialRow | None
    figures: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_row_from_dict(raw: dict[str, Any]) -> TrialRow:
    """A row of ``summary.json`` back as a TrialRow, its types checked (the file may come from anyone)."""
    def number(key: str, kind: type) -> Any:
        value = raw[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise TypeError(key)
        return value

    if not isinstance(raw["params"], dict) or raw["state"] not in STATE_NAMES.values():
        raise TypeError("params or state")
    params = {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in raw["params"].items()}
    return TrialRow(number=number("number", int), state=raw["state"], value=number("value", (int, float)),
                    params=params, seconds=number("seconds", (int, float)), epochs_run=number("epochs_run", int),
                    run_dir=None if raw["run_dir"] is None else str(raw["run_dir"]),
                    retry_of=number("retry_of", int))


STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}


def trial_row(trial: Any) -> TrialRow:
    attrs = trial.user_attrs
    value = trial.value if trial.value is not None else attrs.get("best_val_acc")
    seconds = attrs.get("train_seconds")
    if seconds is None and trial.duration is not None:
        seconds = round(trial.duration.total_seconds(), 2)
    retries = trial.system_attrs.get("retry_history") or [None]  # RetryFailedTrialCallback's record
    return TrialRow(number=trial.number, state=STATE_NAMES[trial.state.name], value=value, params=dict(trial.params),
                    seconds=seconds, epochs_run=attrs.get("epochs_run"), run_dir=attrs.get("run_dir"),
                    retry_of=retries[-1])


def collect(study: Any, settings: SweepSettings) -> SweepResult:
    rows = tuple(trial_row(t) for t in study.get_trials(deepcopy=False))
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    best = max(done, key=lambda r: (r.value, -r.number)) if done else None
    return SweepResult(study=settings.study, storage=shown_url(settings.storage_url()), out=settings.out,
                       trials=rows, best=best, figures=())


def write_results(settings: SweepSettings) -> SweepResult:
    """Read the study and write ``summary.md``, ``summary.csv``, ``summary.json`` and the figures."""
    import optuna

    study = optuna.load_study(study_name=settings.study, storage=open_storage(settings))
    result = collect(study, settings)
    out = Path(settings.out)
    result = SweepResult(**{**result.__dict__, "figures": tuple(write_figures(study, out))})
    write_json(out / SUMMARY_JSON, result.to_dict())
    write_text(out / "summary.csv", to_csv(result))
    write_text(out / "summary.md", to_markdown(result))
    return result


def to_csv(result: SweepResult) -> str:
    names = sorted({k for r in result.trials for k in r.params})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "value", *names, "seconds", "epochs_run", "run_dir", "retry_of"])
    for r in result.trials:
        writer.writerow([r.number, r.state, "" if r.value is None else r.value, *(r.params.get(n, "") for n in names),
                         "" if r.seconds is None else r.seconds, r.epochs_run or "", r.run_dir or "",
                         "" if r.retry_of is None else r.retry_of])
    return buf.getvalue()


def to_markdown(result: SweepResult) -> str:
    names = sorted({k for r in result.trials for k in r.params})
    lines = [f"# Sweep {result.study}", "",
             f"Storage: `{result.storage}`. Value: best validation accuracy of the trial's run (never test).", ""]
    if result.best is not None:
        b = result.best
        lines += [f"Best: trial {b.number}, val acc {b.value:.4f}, "
                  + ", ".join(f"{k} = {v!r}" for k, v in b.params.items()) + f" (`{b.run_dir}`)", ""]
    lines += ["| trial | state | val acc | " + " | ".join(names) + " | seconds | epochs | run |",
              "|---" * (len(names) + 6) + "|"]
    for r in result.trials:
        value = "" if r.value is None else f"{r.value:.4f}"
        cells = [str(r.number), r.state, value, *(_cell(r.params.get(n)) for n in names),
                 "" if r.seconds is None else f"{r.seconds:.0f}", str(r.epochs_run or ""), r.run_dir or ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"![{name}]({name})" for name in result.figures]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_figures(study: Any, out: Path) -> list[str]:
    """Optuna's figures as PNGs in ``out``; a figure that needs more finished trials is left out."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as plots
    except ImportError:  # figures need mnistlab[analysis]; the tables do not
        return []
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return []
    written = []
    for name, function in FIGURES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
            try:
                axes = getattr(plots, function)(study)
            except (ValueError, RuntimeError):  # e.g. importances of parameters that never varied
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        write_with(out / name, lambda path, fig=figure: fig.savefig(path, format="png", dpi=100, bbox_inches="tight"),
                   suffix=".png")
        plt.close(figure)
        written.append(name)
    return written
