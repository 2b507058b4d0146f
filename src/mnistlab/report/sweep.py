"""One self-contained HTML page for a sweep folder: the best trial, Optuna's figures, every trial.

    mnistlab report sweeps/simple -o sweeps/simple/report.html

Built from the folder's ``summary.json`` and PNGs (:mod:`mnistlab.sweep.summary` wrote them); the
folder may come from someone else, so the summary is size-capped and checked field by field, and
only PNGs that resolve inside the folder are embedded.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from mnistlab.errors import UserError
from mnistlab.fileio import write_text
from mnistlab.report.html import MAX_EMBED_BYTES, png_inside, render_page
from mnistlab.sweep.study import SPACE_FILE
from mnistlab.sweep.summary import FIGURES, SUMMARY_JSON, TrialRow, trial_row_from_dict

TEMPLATE = "sweep_template.html"


def is_sweep_dir(path: str | Path) -> bool:
    """Whether ``path`` is a sweep folder with results (``mnistlab sweep`` wrote it)."""
    return (Path(path) / SPACE_FILE).is_file() and (Path(path) / SUMMARY_JSON).is_file()


def read_summary(sweep_dir: Path) -> tuple[dict, list[TrialRow]]:
    """(the summary's header, its trials as typed rows); a one-line UserError for a damaged file."""
    path = sweep_dir / SUMMARY_JSON
    if path.stat().st_size > MAX_EMBED_BYTES:
        raise UserError(f"{path}: larger than {MAX_EMBED_BYTES >> 20} MB; not a sweep summary")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        head = {k: str(raw[k]) for k in ("study", "storage")}
        return head, [trial_row_from_dict(t) for t in raw["trials"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a sweep summary ({type(exc).__name__}); "
                        "run the sweep again to rewrite it") from None


def build_sweep_report(sweep_dir: str | Path, out: str | Path) -> Path:
    """Write the sweep's report to ``out``; its path."""
    sweep_dir, out = Path(sweep_dir), Path(out)
    head, trials = read_summary(sweep_dir)
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    best = max(done, key=lambda t: (t.value, -t.number)) if done else None
    figures = [f for f in (png_inside(sweep_dir, name) for name in FIGURES) if f is not None]
    html = render_page(
        TEMPLATE, study=head["study"], storage=head["storage"], trials=trials, best=best, figures=figures,
        names=sorted({k for t in trials for k in t.params}), states=collections.Counter(t.state for t in trials))
    write_text(out, html)
    return out
