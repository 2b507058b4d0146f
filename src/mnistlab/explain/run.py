"""Explain a run of any framework: write Grad-CAM, saliency, filter, feature-map and gradient-flow figures.

Four chosen test images by default, or the ones named (``mnistlab explain``); the figures take
a few seconds::

    from mnistlab.explain import explain_run

    index = explain_run("runs/simple", indices=[0])        # test image 0
    [f["file"] for f in index["files"]]
    # ['gradcam_idx0.png', 'filters.png', 'feature_maps_idx0.png', 'gradient_flow.png']

A model with self-attention (``selfattention``) also gets ``attention_<example>.png``: each
head's attention from the centre and from a stroke end, over the digit (:mod:`.attention`).

Everything goes to ``RUN_DIR/plots/interpretability/`` with an ``index.json`` that lists each
figure with a caption (the HTML report reads it). The default examples are chosen from the saved
test logits (``predictions.npz``), not recomputed: the most and least confident correct
predictions and the most and least confident mistakes. The framework's explainer comes from
the framework table (:mod:`mnistlab.frameworks`), so PyTorch and Keras runs get the same
pictures under the same file names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnistlab import frameworks, runs
from mnistlab.errors import UserError
from mnistlab.explain.backend import Explainer
from mnistlab.fileio import read_json, write_json
from mnistlab.maths.metrics import softmax
from mnistlab.runconfig import RunConfig
from mnistlab.training.gradflow import EXPLODING, VANISHING, read_grad_norms

OUT_DIR = Path("plots") / "interpretability"
INDEX = "index.json"
GRADIENT_FLOW = "gradient_flow.png"
FILTERS = "filters.png"  # one name for every framework: layer names differ between the twins


def select_examples(logits: np.ndarray, labels: np.ndarray) -> list[tuple[int, str]]:
    """Test indices worth looking at: correct and misclassified, each at highest and lowest confidence."""
    probs = softmax(logits)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    picks: list[tuple[int, str]] = []
    for kind, mask in (("correct", correct), ("misclassified", ~correct)):
        idx = np.flatnonzero(mask)
        if len(idx):
            hi, lo = int(idx[np.argmax(conf[idx])]), int(idx[np.argmin(conf[idx])])
            picks.append((hi, f"{kind}, highest confidence"))
            if lo != hi:
                picks.append((lo, f"{kind}, lowest confidence"))
    return picks


def parse_class(value: str | int, class_names: Sequence[str]) -> int:
    """A class given by name (``"7"``, ``"Sneaker"``) or index, checked against the run's classes."""
    lowered = [c.lower() for c in class_names]
    if str(value).lower() in lowered:
        return lowered.index(str(value).lower())
    if str(value).isdigit() and int(value) < len(class_names):
        return int(value)
    raise UserError(f"unknown class {value!r}; choose one of: {', '.join(class_names)}")


def _explainer(run_dir: Path) -> tuple[Explainer, dict[str, Any]]:
    config = runs.read_config(run_dir)
    if config.is_ensemble:
        raise UserError(f"{run_dir}: an ensemble has no single model to explain; explain one of its members")
    return frameworks.for_run(config, run_dir).explainer_for(run_dir, config), config


def _inputs(run_dir: Path, config: RunConfig, indices: Sequence[int] | None, images: Sequence[str] | None,
            data_dir: str | None) -> list[dict[str, Any]]:
    """The examples to explain: ``{image (uint8 28×28), label or None, name, note}`` each."""
    if images:
        from mnistlab.data.preprocess import load_image, to_model_input

        # The run's own data set's pipeline, as ``mnistlab predict`` uses; every file checked before any work.
        arrays = [to_model_input(load_image(p), config.dataset, str(p)) for p in images]
        return [{"image": a, "label": None, "name": re.sub(r"[^A-Za-z0-9_-]+", "_", Path(p).stem),
                 "note": f"file {Path(p).name}"} for p, a in zip(images, arrays)]
    from mnistlab.data.datasets import load_test_split

    if indices:
        picks = [(int(i), "chosen") for i in indices]
    else:
        logits, labels = runs.load_predictions(run_dir / runs.PREDICTIONS)
        picks = select_examples(logits, labels)
    # Pictures of chosen test examples, picked from the saved test logits; nothing is chosen by them.
    test_x, test_y = load_test_split(config.dataset, data_dir, purpose="explain chosen test examples")
    bad = [i for i, _ in picks if not 0 <= i < len(test_y)]
    if bad:
        raise UserError(f"--index {bad[0]} is outside the test set; give 0..{len(test_y) - 1}")
    return [{"image": test_x[i].numpy(), "label": int(test_y[i]), "name": f"idx{i}", "note": f"test #{i}, {note}"}
            for i, note in picks]


def _clear_previous(out: Path) -> None:
    """Remove the figures a previous ``explain`` listed, so the report never shows stale ones."""
    index = out / INDEX
    if index.is_file():
        for entry in read_json(index).get("files", []):
            (out / Path(entry["file"]).name).unlink(missing_ok=True)


def explain_run(run_dir: str | Path, *, indices: Sequence[int] | None = None, images: Sequence[str] | None = None,
                target: str | int | None = None, layer: str | None = None,
                data_dir: str | None = None) -> dict[str, Any]:
    """Write every interpretability figure for ``run_dir`` and return the index (also saved as JSON)."""
    from mnistlab.explain import attention
    from mnistlab.explain import visualize as vis

    run_dir = Path(run_dir)
    explainer, config = _explainer(run_dir)
    names = config.data.class_names
    target_class = None if target is None else parse_class(target, names)
    layer = layer or explainer.default_layer()
    explainer.check_layer(layer)
    examples = _inputs(run_dir, config, indices, images, data_dir)

    out = run_dir / OUT_DIR
    _clear_previous(out)
    files: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for ex in examples:
        probs = explainer.probabilities(ex["image"])
        pred = int(probs.argmax())
        runner_up = int(np.argsort(-probs)[1])
        other = target_class if target_class is not None else (
            ex["label"] if ex["label"] is not None and ex["label"] != pred else runner_up)
        classes = [pred] + ([other] if other != pred else [])
        cams = [explainer.gradcam(ex["image"], k, layer) for k in classes]
        sal = explainer.saliency(ex["image"], pred)
        truth = f"true {names[ex['label']]} · " if ex["label"] is not None else ""
        title = f"{ex['note']} · {truth}predicted {names[pred]} ({probs[pred]:.1%}) · layer {layer}"
        roles = {other: "target" if other == target_class else "true" if other == ex["label"] else "2nd", pred: "pred"}
        labels = [f"{names[k]} ({roles[k]}, p={probs[k]:.2f})" for k in classes]
        file = f"gradcam_{ex['name']}.png"
        vis.save(vis.example_figure(ex["image"], list(zip(labels, cams)), sal, title), out / file)
        files.append({"file": file, "kind": "gradcam",
                      "caption": f"{title}: Grad-CAM for {', '.join(labels)} and saliency for the prediction"})
        summary.append({"example": ex["name"], "note": ex["note"], "label": ex["label"], "predicted": pred,
                        "predicted_name": names[pred],
                        "confidence": round(float(probs[pred]), 6), "gradcam_classes": classes})

    conv_name, weights = explainer.first_conv()
    vis.save(vis.filters_figure(weights, conv_name), out / FILTERS)
    files.append({"file": FILTERS, "kind": "filters", "caption": f"first-layer filters ({conv_name})"})

    first = examples[0]
    maps = explainer.feature_maps(first["image"])
    file = f"feature_maps_{first['name']}.png"
    title = f"feature maps of each stage for {first['note']}"
    vis.save(vis.feature_maps_figure(first["image"], maps, title), out / file)
    files.append({"file": file, "kind": "feature_maps", "caption": title,
                  "stages": [{"name": n, "shape": list(m.shape)} for n, m in maps]})

    files += attention.draw(explainer, examples, out)  # only for models with self-attention

    flow = gradient_flow_plot(run_dir, update_index=False)
    if flow is not None:
        files.append(flow)
    index = {"run_dir": str(run_dir), "arch": config.arch, "framework": config.framework,
             "layer": layer, "examples": summary, "files": files}
    write_json(out / INDEX, index)
    return index


def gradient_flow_plot(run_dir: str | Path, *, update_index: bool = True) -> dict[str, Any] | None:
    """Plot ``grad_norms.csv`` to ``plots/interpretability/gradient_flow.png``; None when the run has none."""
    from mnistlab.explain import visualize as vis

    run_dir = Path(run_dir)
    rows = read_grad_norms(run_dir)
    if not rows:
        return None
    arch = runs.read_config(run_dir).arch
    bad = sorted({(r["layer"], r["status"]) for r in rows if r["status"] != "ok"})
    note = "; ".join(f"{layer} {status}" for layer, status in bad) or "all layers healthy"
    out = run_dir / OUT_DIR
    vis.save(vis.gradient_flow_figure(rows, VANISHING, EXPLODING, f"gradient flow: {arch} ({note})"),
             out / GRADIENT_FLOW)
    entry = {"file": GRADIENT_FLOW, "kind": "gradient_flow",
             "caption": f"per-layer gradient norms during training ({note})",
             "warnings": [f"{layer}: {status}" for layer, status in bad]}
    if update_index:
        index = read_json(out / INDEX) if (out / INDEX).is_file() else {"run_dir": str(run_dir), "files": []}
        index["files"] = [f for f in index["files"] if f["file"] != GRADIENT_FLOW] + [entry]
        write_json(out / INDEX, index)
    return entry
