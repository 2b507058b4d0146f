"""One self-contained HTML page for one or more runs: images embedded, nothing fetched.

    >>> from mnistlab.report.html import build_report                          # doctest: +SKIP
    >>> build_report(["runs/qs/simple", "runs/qs/resnet"], "runs/qs/report.html")   # doctest: +SKIP
    PosixPath('runs/qs/report.html')

Sections: data, one per model (config, curves, confusion, errors, calibration, uncertainty, and
interpretability / deployment when those files exist), the comparison, and the environment.
Everything comes from files in the run directories; a run whose ``analysis.json`` is missing or
older than its predictions is analysed first (:func:`mnistlab.analysis.analyze.analyze_run`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab import __version__, runs
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


def model_section(run_dir: Path, label: str) -> dict[str, Any]:
    """Everything the template shows for one run."""
    config = runs.read_config(run_dir)
    analysis = read_json(run_dir / ANALYSIS)
    metrics = load_metrics(run_dir)
    training = read_json(run_dir / runs.TRAINING) if (run_dir / runs.TRAINING).is_file() else {}
    figures = {k: image(run_dir / v) for k, v in analysis["figures"].items() if (run_dir / v).is_file()}
    interpretability = [image(p) for p in sorted((run_dir / "plots" / "interpretability").glob("*.png"))]
    deployment = [{"title": _title(p), "rows": flatten(read_json(p))} for p in sorted((run_dir / "export").glob("*.json"))]
    train = config.get("train", {})
    settings = [("architecture", config["arch"]), ("framework", config.get("framework", "torch")),
                ("parameters", f"{config['params']:,}")]
    settings += [(k.replace("_", " "), str(train[k])) for k in TRAIN_KEYS if k in train]
    if config.get("model_args"):
        settings.append(("model args", json.dumps(config["model_args"])))
    aurocs = [{"name": SCORE_LABELS.get(k, k), **v} for k, v in analysis["uncertainty"]["aurocs"].items()]
    return {
        "id": "model-" + "".join(c if c.isalnum() else "-" for c in label),
        "label": label, "run_dir": str(run_dir), "config": config, "settings": settings, "metrics": metrics,
        "training": training, "analysis": analysis, "figures": figures, "aurocs": aurocs,
        "interpretability": interpretability, "deployment": deployment,
        "misclassified": analysis.get("misclassified", [])[:5],
        "class_names": config["data"]["class_names"],
    }


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Short unique names: the folder name, or parent/name where folder names repeat."""
    names = [d.name for d in run_dirs]
    return [f"{d.parent.name}/{d.name}" if names.count(d.name) > 1 else d.name for d in run_dirs]


def environment_rows(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        env = m["config"].get("environment", {})
        rows.append({"label": m["label"], "seed": m["config"].get("train", {}).get("seed"),
                     "created": m["config"].get("created", "—"), "train_seconds": m["training"].get("train_seconds"),
                     "inference_seconds": m["metrics"].get("inference_seconds"),
                     "threads": m["config"].get("threads"), **env})
    return rows


def build_report(run_dirs: Sequence[str | Path], out: str | Path, *, data_dir: str | None = None,
                 mc_limit: int | None = None, log: Callable[[str], None] = lambda _msg: None) -> Path:
    """Write the report for ``run_dirs`` to ``out`` (comparison files go beside it); return its path."""
    import jinja2

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
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    html = env.get_template(TEMPLATE).render(
        version=__version__, generated=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        models=models, data=first["config"]["data"], dataset=first["config"]["dataset"],
        datasets=sorted({m["config"]["dataset"] for m in models}),
        test_count=first["metrics"]["n_samples"],
        test_counts=[c["support"] for c in first["metrics"]["per_class"]], examples=examples,
        columns=COLUMNS, comparison_rows=table_rows(comparison), comparison=comparison,
        comparison_figures=[image(Path(p)) for p in figures.values() if p.endswith(".png")],
        environment=environment_rows(models))
    write_text(out, html)
    return out
