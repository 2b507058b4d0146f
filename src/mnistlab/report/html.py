"""One self-contained HTML page for one or more runs: images embedded, nothing fetched.

Runs not analysed yet are analysed first (a few seconds each; ``mnistlab report``)::

    from mnistlab.report.html import build_report

    build_report(["runs/qs/simple", "runs/qs/resnet"], "runs/qs/report.html")   # PosixPath('runs/qs/report.html')

Sections: data, one per model (config, curves, confusion, errors, calibration, uncertainty, and
interpretability / deployment when those files exist), the comparison, and the environment.
Everything comes from files in the run directories; a run whose ``analysis.json`` is missing or
older than its predictions is analysed first (:func:`mnistlab.analysis.analyze.analyze_run`).
A run directory may come from someone else, so only regular files that resolve inside it are
embedded (a path in ``analysis.json`` or a symbolic link that leads out is skipped with a warning
on stderr), images must be PNGs and every file is size-capped (:data:`MAX_EMBED_BYTES`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab import runs
from mnistlab.version import __version__
from mnistlab.analysis.analyze import ANALYSIS, analysis_is_current, analyze_run, require_predictions
from mnistlab.analysis.compare import COLUMNS, compare_runs, table_rows, write_comparison
from mnistlab.analysis.uncertainty import SCORE_LABELS
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import load_metrics
from mnistlab.fileio import read_json, write_text

TEMPLATE = "template.html"
# Training settings worth a line in each model's config table, in this order.
TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "scheduler", "patience", "monitor",
              "seed", "augment", "val_size", "train_subset")


log = logging.getLogger(__name__)  # unconfigured, warnings still reach stderr
MAX_EMBED_BYTES = 20 * 2**20  # the largest figure here is ~1 MB; a bigger "figure" is not ours
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Figures at least this many pixels wide (multi-panel) scroll sideways on a phone instead of shrinking.
WIDE_PX = 1000


def image(path: Path, title: str | None = None) -> dict[str, Any]:
    """An embedded PNG: its data URI, whether it is wide, and a title."""
    from PIL import Image

    with Image.open(path) as im:
        width = im.size[0]
    return {"src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii"),
            "wide": width >= WIDE_PX, "title": title or _title(path)}


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON → (dotted key, short text) rows, for a generic table."""
    if isinstance(obj, dict):
        return [row for k, v in obj.items() for row in flatten(v, f"{prefix}{k}.")]
    text = f"{obj:.6g}" if isinstance(obj, float) else json.dumps(obj) if isinstance(obj, list) else str(obj)
    return [(prefix.rstrip("."), text if len(text) <= 120 else text[:117] + "…")]


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").capitalize()


def inside(run_dir: Path, relative: str | Path) -> Path | None:
    """``run_dir/relative`` when it is a regular file that resolves inside ``run_dir`` (else None, warned)."""
    path = run_dir / relative
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not resolved.is_relative_to(run_dir.resolve()):
        log.warning("report: skipped %s: it leads outside the run directory (%s)", path, resolved)
        return None
    if not resolved.is_file() or resolved.stat().st_size > MAX_EMBED_BYTES:
        log.warning("report: skipped %s: not a regular file under %d bytes", path, MAX_EMBED_BYTES)
        return None
    return resolved


def png_inside(run_dir: Path, relative: str | Path) -> dict[str, Any] | None:
    path = inside(run_dir, relative)
    if path is None:
        return None
    with open(path, "rb") as fh:
        if fh.read(len(PNG_MAGIC)) != PNG_MAGIC:
            log.warning("report: skipped %s: not a PNG image", run_dir / relative)
            return None
    try:
        return image(path, _title(run_dir / relative))
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a damaged header
        log.warning("report: skipped %s: unreadable PNG (%s)", run_dir / relative, str(exc)[:80])
        return None


def _json(run_dir: Path, relative: str | Path) -> Any:
    path = inside(run_dir, relative)
    if path is None:
        return None
    try:
        return read_json(path)
    except (ValueError, RecursionError):
        log.warning("report: skipped %s: not JSON", run_dir / relative)
        return None


def _captions(run_dir: Path, index: Path) -> dict[str, str]:
    """File name → caption from ``explain``'s index (which example, class, query, layer a figure shows)."""
    data = _json(run_dir, index)
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):  # no explain yet, or not its index: the file names serve as titles
        return {}
    return {e["file"]: e["caption"] for e in entries
            if isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("caption"), str)}


def model_section(run_dir: Path, label: str) -> dict[str, Any]:
    """Everything the template shows for one run; only files inside ``run_dir`` are read."""
    config = runs.read_config(run_dir)
    analysis = _json(run_dir, ANALYSIS)
    if not isinstance(analysis, dict):
        raise UserError(f"{run_dir / ANALYSIS}: unreadable or outside the run; run 'mnistlab analyze {run_dir}'")
    metrics = load_metrics(run_dir)
    training = _json(run_dir, runs.TRAINING)
    training = training if isinstance(training, dict) else {}
    named = analysis.get("figures", {})
    figures = {k: f for k, v in (named.items() if isinstance(named, dict) else ())
               if isinstance(v, str) and (f := png_inside(run_dir, v)) is not None}
    interp = run_dir / "plots" / "interpretability"
    captions = _captions(run_dir, interp.relative_to(run_dir) / "index.json")
    interpretability = [{**f, "title": captions.get(p.name, f["title"])} for p in sorted(interp.glob("*.png"))
                        if (f := png_inside(run_dir, p.relative_to(run_dir)))]
    deployment = [{"title": _title(p), "rows": flatten(obj)} for p in sorted((run_dir / "export").glob("*.json"))
                  if (obj := _json(run_dir, p.relative_to(run_dir))) is not None]
    train = config.train.to_dict() if config.train is not None else {}
    settings = [("architecture", config.arch), ("framework", config.framework),
                ("parameters", f"{config.params:,}")]
    settings += [(k.replace("_", " "), str(train[k])) for k in TRAIN_KEYS if k in train]
    if config.model_args:
        settings.append(("model args", json.dumps(config.model_args)))
    if isinstance(training.get("precision"), str):  # runs before --amp auto did not record it
        settings.append(("training precision", f"{training['precision']} ({training.get('precision_reason', '')})"))
    aurocs = [{"name": SCORE_LABELS.get(k, k), **v} for k, v in analysis["uncertainty"]["aurocs"].items()]
    return {
        "id": "model-" + "".join(c if c.isalnum() else "-" for c in label),
        "label": label, "run_dir": str(run_dir), "config": config, "settings": settings, "metrics": metrics,
        "training": training, "analysis": analysis, "figures": figures, "aurocs": aurocs,
        "interpretability": interpretability, "deployment": deployment,
        "misclassified": analysis.get("misclassified", [])[:5],
        "class_names": config.data.class_names,
    }


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, or parent/name where folder names repeat."""
    names = [d.name for d in run_dirs]
    return [f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in run_dirs]


def environment_rows(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        config = m["config"]
        env = dict(config.environment)
        rows.append({"label": m["label"], "seed": config.seed,
                     "created": config.created or "—", "train_seconds": m["training"].get("train_seconds"),
                     "inference_seconds": m["metrics"].get("inference_seconds"),
                     "threads": config.threads, **env})
    return rows


def render_page(template: str, **context: Any) -> str:
    """A page template of this folder (each includes ``page_head.html``) rendered with ``context``, the
    version and the time it was generated; a missing variable is an error, not an empty string."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    return env.get_template(template).render(
        version=__version__, generated=_dt.datetime.now().astimezone().isoformat(timespec="seconds"), **context)


def build_report(run_dirs: Sequence[str | Path], out: str | Path, *, data_dir: str | None = None,
                 mc_limit: int | None = None, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """Write the report for ``run_dirs`` to ``out`` (comparison files go beside it); return its path."""
    import jinja2  # noqa: F401  (before minutes of analyses: a missing jinja2 fails at once)

    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise UserError("give at least one run directory")
    for d in dirs:
        runs.read_config(d)
        require_predictions(d)
        load_metrics(d)
    for d in dirs:
        if not analysis_is_current(d):
            analyze_run(d, data_dir=data_dir, mc_limit=mc_limit, log=log)
    out = Path(out)
    comparison = compare_runs(dirs)
    figures = write_comparison(comparison, out.parent / "comparison")
    models = [model_section(d, label) for d, label in zip(dirs, _labels(dirs))]
    first = models[0]
    examples = next((m["figures"]["examples"] for m in models if "examples" in m["figures"]), None)
    html = render_page(
        TEMPLATE, models=models, data=first["config"].data, dataset=first["config"].dataset,
        datasets=sorted({m["config"].dataset for m in models}),
        test_count=first["metrics"]["n_samples"],
        test_counts=[c["support"] for c in first["metrics"]["per_class"]], examples=examples,
        columns=COLUMNS, comparison_rows=table_rows(comparison), comparison=comparison,
        comparison_figures=[image(Path(p)) for p in figures.values() if p.endswith(".png")],
        environment=environment_rows(models))
    write_text(out, html)
    return out
