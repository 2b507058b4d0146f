"""The model a service answers with: loaded once per worker, then shared read-only by every request.

    >>> import numpy as np
    >>> from mnistlab.serve.model import ModelHolder
    >>> holder = ModelHolder.load("runs/simple", backend="torch")     # or "onnx" (below)
    >>> holder.probabilities(np.zeros((2, 28, 28), np.uint8)).shape
    (2, 10)

``torch``: the run's own predictor (any framework the library can load: PyTorch, Keras,
ensembles where supported). ``onnx``: ``export/model.onnx`` through ONNX Runtime, exported again
first when it is missing or is not the export of the run's current weights (the SHA-256 check of
``bench`` and the INT8 export). Both take uint8 ``[N, 28, 28]`` images in the data set's form
(light on black). Concurrent calls are safe: inference only reads the weights (PyTorch in eval mode
under ``no_grad``; an ONNX Runtime session is thread-safe); Grad-CAM, which hooks modules, runs under a lock.

The model is read once, into memory (PyTorch copies the weights into its parameters; ONNX Runtime
gets the file's bytes): a run retrained, resumed or deleted under a service does not change what
it answers. :meth:`ModelHolder.changed_sources` tells which of the files it came from changed since.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnistlab import frameworks, runs
from mnistlab.data import registry
from mnistlab.data.preprocess import pipeline_name
from mnistlab.errors import DataError, UserError
from mnistlab.fileio import read_json
# THE one place the service asks the library for "uint8 images → logits" of a run.
from mnistlab.frameworks.inference import member_dir, predictor as run_predictor
from mnistlab.maths.metrics import softmax
from mnistlab.runconfig import RunConfig
from mnistlab.serve.parsing import ApiError


Stamp = tuple[int, int, int] | None  # a file's (inode, size, mtime in ns); None: no such file


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _sources(run_dir: Path, config: RunConfig) -> list[Path]:
    """The files a run's model is built from: its config and weights, each used member's for an ensemble."""
    if not config.is_ensemble:
        return [run_dir / runs.CONFIG, runs.weights_path(run_dir, config)]
    members = [member_dir(run_dir, m.run_dir) for m in config.members if m.used]
    return [run_dir / runs.CONFIG, *(f for d in members for f in _sources(d, runs.read_config(d)))]


def _onnx_predictor(run_dir: Path, threads: int | None) -> tuple[Callable[[np.ndarray], np.ndarray], dict[Path, Stamp]]:
    """The logits of ``export/model.onnx`` (exported again unless it is the export of the current weights), and its stamp."""
    from mnistlab.export import ONNX_FILE, ONNX_REPORT, export_path, require_deploy_extra
    from mnistlab.export.onnx_runtime import reusable_export, session

    require_deploy_extra()  # before the check below, which needs onnx to read the file
    path = export_path(run_dir, ONNX_FILE)
    # A model.onnx of earlier weights (exported before a resume) or with no record (an export killed
    # before writing it) would answer for another model: only the recorded export of these weights is served.
    if not reusable_export(run_dir, ONNX_FILE, ONNX_REPORT):
        config = runs.read_config(run_dir)
        report = frameworks.of_run(config, run_dir).export(run_dir, "onnx")
        if not report["passed"]:
            raise UserError(f"{run_dir}: the ONNX export failed its checks; use --backend torch")
    stamp = _stamp(path)
    sess = session(path.read_bytes(), threads)
    feed, fetch = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
    side = runs.read_config(run_dir).data.image_size or 28

    def logits(images: np.ndarray) -> np.ndarray:
        # The graph takes float32 [N, C, H, W] in [0, 1] (normalisation folded in); one call, no
        # chunking: a request holds at most --max-batch images.
        x = np.asarray(images, dtype=np.float32).reshape(len(images), -1, side, side) * np.float32(1 / 255)
        return sess.run(fetch, {feed: x})[0]

    return logits, {path: stamp}


def image_shape(config: RunConfig) -> tuple[int, ...]:
    """One image as the run's model takes it, uint8: ``(H, W)``, or ``(C, H, W)`` in colour."""
    side, channels = config.data.image_size or 28, config.data.in_channels or 1
    return (side, side) if channels == 1 else (channels, side, side)


def check_pixels_fit(holder: ModelHolder, field: str) -> None:
    """Pixel arrays sent as JSON are 28×28 gray; a run on images of another shape takes pictures only."""
    shape = image_shape(holder.config)
    if shape != (28, 28):
        raise ApiError(422, f"{field}: this run's images are {'×'.join(map(str, shape))}, and pixel arrays are "
                            "28×28 only; send a picture (image/* or the multipart field 'file')")


@dataclass
class ModelHolder:
    """A loaded run: ``logits(uint8 [N, 28, 28])``, its description, and Grad-CAM where possible."""

    name: str
    run_dir: Path
    config: RunConfig
    logits: Callable[[np.ndarray], np.ndarray]
    backend: str
    info: dict[str, Any]
    explainer: Any = None  # (the framework's explainer, its Grad-CAM layer), built on first use
    sources: dict[Path, Stamp] = field(default_factory=dict)  # the files read, as they were before reading
    _explain_lock: threading.Lock = field(default_factory=threading.Lock)  # captum hooks modules: one at a time
    _prepare_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, run_dir: str | Path, backend: str = "torch", threads: int | None = None) -> "ModelHolder":
        """Load ``run_dir`` for ``backend``; ``threads`` sets the intra-op threads (process-wide for torch)."""
        run_dir = Path(run_dir)
        config = runs.read_config(run_dir)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        sources = {path: _stamp(path) for path in _sources(run_dir, config)}
        if backend == "onnx":
            logits, exported = _onnx_predictor(run_dir, threads)
            sources |= exported
        else:
            logits = run_predictor(run_dir)
        holder = cls(run_dir.resolve().name, run_dir, config, logits, backend, describe(run_dir, config), sources=sources)
        holder.logits(np.zeros((1, *image_shape(config)), np.uint8))  # warm up: the first request is not the slow one
        # Importing captum takes a second or two: at start, not in the first request. Not in a
        # background thread either: it reads the memory-mapped weights file, and a file replaced
        # under a reading thread kills the process (SIGBUS), as a test that rewrites a run found.
        if holder.explainable:
            holder._warm_explainer()
        return holder

    def changed_sources(self) -> list[str]:
        """The files the model came from that changed or went away since it was loaded ("PATH (deleted)")."""
        changed = []
        for path, stamp in self.sources.items():
            now = _stamp(path)
            if now != stamp:
                changed.append(f"{path} ({'deleted' if now is None else 'changed'})")
        return changed

    @property
    def class_names(self) -> list[str]:
        return list(self.config.data.class_names)

    @property
    def dataset(self) -> str:
        """The data set the run was trained on: it picks the preprocessing of uploaded pictures."""
        return self.config.dataset

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(self.logits(images), dtype=np.float64)).astype(np.float32)

    def _warm_explainer(self) -> None:
        try:
            self._prepare_explainer()
        except Exception:  # noqa: BLE001  (the first ?explain=true request meets the same error and reports it)
            pass

    def _prepare_explainer(self) -> tuple[Any, str]:
        """The framework's explainer of the run and its Grad-CAM layer, built once (under the lock's protection)."""
        with self._prepare_lock:
            if self.explainer is None:
                explainer = frameworks.for_run(self.config, self.run_dir).explainer_for(self.run_dir, self.config)
                self.explainer = (explainer, explainer.default_layer())
        return self.explainer

    @property
    def explainable(self) -> bool:
        """Grad-CAM needs one model (not an ensemble) whose framework explains, with its explain extra."""
        return not self.config.is_ensemble and frameworks.of_run(self.config, self.run_dir).can_explain_here()

    def gradcam_png(self, image: np.ndarray, target: int) -> str | None:
        """Grad-CAM of one uint8 28×28 image for ``target`` as a base64 PNG (None: it cannot be drawn here)."""
        if not self.explainable:
            return None
        from PIL import Image

        with self._explain_lock:
            explainer, layer = self._prepare_explainer()
            cam = explainer.gradcam(image, target, layer)
        cam = cam / cam.max() if cam.max() > 0 else cam
        buf = io.BytesIO()
        Image.fromarray((cam * 255).astype(np.uint8), "L").save(buf, "PNG")
        return base64.b64encode(buf.getvalue()).decode("ascii")


def describe(run_dir: Path, config: RunConfig) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: the run's facts, read from its files."""
    metrics = run_dir / runs.METRICS
    accuracy = None
    if metrics.is_file():
        try:
            accuracy = read_json(metrics).get("accuracy")
        except ValueError:
            accuracy = None
    return {
        "name": run_dir.resolve().name,
        "arch": config.arch,
        "framework": config.framework,
        "kind": config.kind,
        "dataset": config.dataset,
        "params": config.params,
        "test_accuracy": accuracy,
        "trained": config.created,
        "class_names": list(config.data.class_names),
        **dataset_facts(config.dataset),
    }


def dataset_facts(dataset: str) -> dict[str, Any]:
    """What one image shows (for the drawing page's wording) and the pipeline pictures go through."""
    try:
        info = registry.get(dataset)  # built in, or added to the store with 'mnistlab data add'
    except DataError:  # a run of a data set neither this version nor the store knows
        return {"subject": "image", "preprocessing": None}
    return {"subject": info.subject, "preprocessing": pipeline_name(dataset)}
