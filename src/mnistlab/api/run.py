"""A run directory as one object: train or load it, then evaluate, predict, export, explain, report.

    >>> import mnistlab
    >>> run = mnistlab.train("simple", epochs=1, train_subset=1000, val_size=500, out="runs/api")
    >>> run                 # seconds of training, so a rough model
    Run('runs/api': train torch simple on mnist)
    >>> m = run.evaluate()          # the test split, read once, as `mnistlab evaluate` does
    >>> m.accuracy == m["accuracy"]     # 0.99 with the defaults (10 epochs, all 55,000 images)
    True
    >>> from PIL import Image, ImageDraw
    >>> seven = Image.new("L", (56, 56), 255)        # black ink on white paper, any size
    >>> ImageDraw.Draw(seven).line([(14, 12), (42, 12), (24, 46)], fill=0, width=5)
    >>> p = mnistlab.load("runs/api").predict(seven)     # or arrays, tensors, file paths
    >>> p.probabilities.shape, len(p.classes)
    ((1, 10), 1)

:class:`Run` reads everything from its directory (the run is the contract, as for every command),
so ``mnistlab.load`` gives the same object for any run: PyTorch, Keras, ensemble, transfer or
pruned. Each method calls the function its command calls; mistakes raise
:class:`mnistlab.UserError` with the command's one-line message.
"""

from __future__ import annotations

import dataclasses
import difflib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from mnistlab.api.results import Explanation, Metrics, Prediction, figure_from_png, html_table
from mnistlab.errors import CheckFailed, Interrupted, UserError

if TYPE_CHECKING:  # the options of seeds run as repeats; imported where used
    from mnistlab.sweep.repeats import RepeatOptions


class Run:
    """One run directory: its typed config, history, metrics and model, and what can be done with it."""

    def __init__(self, path: str | Path):
        from mnistlab import runs

        self.path = Path(path)
        self._config = runs.read_config(self.path)  # a one-line UserError for anything that is not a run
        self._model: Any = None

    # --- what the directory holds ------------------------------------------------------------
    @property
    def config(self):
        """The typed run config (:class:`mnistlab.runconfig.RunConfig`)."""
        return self._config

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict per epoch (``history.csv``): losses, accuracies, learning rate, seconds."""
        from mnistlab import runs

        return runs.read_history(self.path)

    @property
    def training(self) -> dict[str, Any]:
        """The training summary (``training.json``): best epoch, wall time, why it stopped; {} for none."""
        from mnistlab import runs
        from mnistlab.fileio import read_json

        path = self.path / runs.TRAINING
        return read_json(path) if path.is_file() else {}

    @property
    def metrics(self) -> Metrics | None:
        """The test metrics (``metrics.json``), or None before :meth:`evaluate`."""
        from mnistlab import runs
        from mnistlab.fileio import read_json

        path = self.path / runs.METRICS
        return Metrics(read_json(path)) if path.is_file() else None

    @property
    def members(self) -> list["Run"]:
        """An ensemble's member runs (those it predicts with); [] for a single model."""
        from mnistlab.frameworks.inference import member_dir

        return [Run(member_dir(self.path, m.run_dir)) for m in self.config.members if m.used]

    @property
    def model(self) -> Any:
        """The framework's own model object (a ``torch.nn.Module`` in eval mode, or a ``keras.Model``)."""
        if self.config.is_ensemble:
            raise UserError(f"{self.path}: an ensemble has no single model; see .members")
        if self._model is None:
            self._model = self._framework().load_model(self.path)
        return self._model

    def _framework(self):
        from mnistlab import frameworks

        return frameworks.for_run(self.config, self.path)

    # --- what can be done with it ------------------------------------------------------------
    def evaluate(self, *, tta: str = "off", data_dir: str | None = None) -> Metrics:
        """Read the test split once, save logits and ``metrics.json``, as ``mnistlab evaluate`` does."""
        from mnistlab.evaluation.evaluate import evaluate_run

        return Metrics(evaluate_run(self.path, data_dir=data_dir, tta=tta))

    def predict(self, images: Any) -> Prediction:
        """Class probabilities of images: uint8 arrays ``(H, W)``, ``(N, H, W)``, ``(N, 1, H, W)``, tensors,
        PIL images or file paths (pictures go through the data set's preprocessing, as ``mnistlab predict``)."""
        from mnistlab.api.inputs import as_images
        from mnistlab.predict import predict_arrays

        x, notes = as_images(images, self.config.dataset, self.config.data.image_size or 28,
                             self.config.data.in_channels or 1)
        return Prediction(predict_arrays(self.path, x), tuple(self.config.data.class_names),
                          tuple(tuple(n) for n in notes))

    def export(self, format: str = "onnx", *, data_dir: str | None = None, threads: int | None = None) -> Path:
        """Write the self-checked ``export/model.onnx`` (``int8``: ``model.int8.onnx``; a Keras run also
        ``litert``: ``model.tflite``, ``saved_model``: a folder); its path.

        Raises :class:`mnistlab.CheckFailed` when the export does not match the run's outputs.
        """
        report = export_run(self.path, format, data_dir=data_dir, threads=threads)
        if not report.get("passed", True):
            raise CheckFailed(f"{self.path}: the {format} export's self-check failed "
                              f"(max |Δ logit| {report['max_abs_diff']:.2e}); see its report in export/")
        return self.path / report["file"]

    def explain(self, images: Any, *, method: str = "gradcam", target: int | str | None = None,
                layer: str | None = None) -> Explanation:
        """Grad-CAM (or saliency) maps of images for the predicted class (or ``target``); shows inline."""
        from mnistlab.api.inputs import as_images
        from mnistlab.explain.run import parse_class

        methods = ("gradcam", "saliency")
        if method not in methods:
            raise UserError(f"method {method!r}: choose one of {', '.join(methods)}")
        explainer = self._framework().explainer_for(self.path, self.config)
        x, _ = as_images(images, self.config.dataset, self.config.data.image_size or 28,
                         self.config.data.in_channels or 1)
        names = tuple(self.config.data.class_names)
        layer = layer or explainer.default_layer()
        explainer.check_layer(layer)
        probs = [explainer.probabilities(image) for image in x]
        targets = [parse_class(target, names) if target is not None else int(p.argmax()) for p in probs]
        maps = [explainer.gradcam(image, k, layer) if method == "gradcam" else explainer.saliency(image, k)
                for image, k in zip(x, targets)]
        return Explanation(images=x, maps=maps, targets=targets, probabilities=probs, class_names=names,
                           method=method, layer=layer if method == "gradcam" else None)

    def plots(self, *, data_dir: str | None = None, mc_limit: int | None = None) -> dict[str, Any]:
        """Every figure of ``mnistlab plots`` (written under ``plots/``), as matplotlib figures by name
        (each displays inline in Jupyter)."""
        from mnistlab.analysis.analyze import analyze_run

        summary = analyze_run(self.path, data_dir=data_dir, mc_limit=mc_limit)
        return {name: figure_from_png(self.path / rel) for name, rel in summary["figures"].items()}

    def report(self, path: str | Path | None = None, *, data_dir: str | None = None,
               mc_limit: int | None = None) -> Path:
        """The self-contained HTML report of this run (default ``<run>/report.html``); its path."""
        from mnistlab.report.html import build_report

        return build_report([self.path], path or self.path / "report.html", data_dir=data_dir, mc_limit=mc_limit)

    # --- notebooks ---------------------------------------------------------------------------
    def _rows(self) -> list[tuple[str, Any]]:
        c, t, m = self.config, self.training, self.metrics
        rows = [("path", str(self.path)), ("kind", c.kind), ("framework", c.framework), ("data set", c.dataset),
                ("architecture", c.arch), ("parameters", f"{c.params:,}" if c.params is not None else "—")]
        if c.is_ensemble:
            rows.append(("members used", len(self.members)))
        if t:
            rows += [("epochs", f"{t.get('best_epoch')} best of {t.get('epochs_run')}"),
                     ("best val accuracy", t.get("best_val_acc")), ("train seconds", t.get("train_seconds"))]
        rows.append(("test accuracy", m["accuracy"] if m is not None else "not evaluated (run.evaluate())"))
        return rows

    def __repr__(self) -> str:
        c = self.config
        what = f"ensemble of {len(c.members)} runs" if c.is_ensemble else f"{c.kind} {c.framework} {c.arch}"
        return f"Run({str(self.path)!r}: {what} on {c.dataset})"

    def _repr_html_(self) -> str:
        return html_table(self._rows(), caption=f"mnistlab run {self.path.name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.path.resolve() == self.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())


def _path(run: Any) -> Path:
    return run.path if isinstance(run, Run) else Path(run)


def export_run(run_dir: str | Path, format: str = "onnx", *, data_dir: str | None = None, threads: int | None = None,
               calibration_size: int | None = None, method: str = "minmax") -> dict[str, Any]:
    """``mnistlab export``: the ONNX (or INT8) export of a run and its check figures."""
    from mnistlab import frameworks, runs

    formats = ("onnx", "int8", "litert", "saved_model")
    if format not in formats:
        raise UserError(f"--format {format!r}: choose one of {', '.join(formats)}")
    config = runs.read_config(run_dir)
    framework = frameworks.of_run(config, run_dir)
    framework.require(format)  # says why not, if not: no need for the framework's packages to say it
    from mnistlab.export.quantize import CALIBRATION_SIZE, export_int8
    from mnistlab.training.progress import WorkProgress

    # Exporting and checking take seconds to a minute, with no count to show: the display says it is at work.
    with WorkProgress(f"export {format}: {Path(run_dir).name}", unit=""):
        if format != "int8":
            return framework.export(run_dir, format, data_dir=data_dir, threads=threads)
        return export_int8(run_dir, data_dir=data_dir, threads=threads, method=method,
                           calibration_size=calibration_size or CALIBRATION_SIZE)


# The keyword arguments of `train` that are not TrainConfig fields (the command's other options).
RUN_OPTIONS = ("preset", "out", "force", "resume", "seeds", "nproc", "data_dir", "progress", "repeat",
               "resume_command")


def train_config(arch: str | None = None, *, preset: str = "default", **settings: Any):
    """The :class:`~mnistlab.config.TrainConfig` that ``mnistlab train --arch ARCH --preset P --k v ...`` makes."""
    from mnistlab.config import PRESETS, TrainConfig
    from mnistlab.config import preset as make

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in settings:
        if name not in known:
            close = difflib.get_close_matches(name, [*known, *RUN_OPTIONS], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see help(mnistlab.train)"
            raise UserError(f"unknown setting {name!r}{hint}")
    if arch is None and "arch" not in PRESETS.get(preset, {}) and "arch" not in settings:
        raise UserError("--arch is required (or --resume RUN_DIR, or a --preset that names one); see 'mnistlab models'")
    return make(preset, **({"arch": arch} if arch else {}), **settings)


def train(arch: str | None = None, *, preset: str = "default", out: str | Path | None = None, force: bool = False,
          resume: bool = False, seeds: Sequence[int] | str | None = None, nproc: int | None = None,
          data_dir: str | None = None, progress: bool = True, repeat: RepeatOptions | None = None,
          resume_command: str | None = None,
          **settings: Any) -> "Run | list[Run] | None":
    """Train a model into a run directory and return the :class:`Run`; ``mnistlab train`` by the same names.

    ``settings`` are the training settings, by the names of :class:`mnistlab.config.TrainConfig`
    and ``mnistlab train`` (``epochs``, ``lr``, ``framework="keras"``, ``dataset``, ``device``,
    ``amp``, ...), on top of ``preset`` (``default``, ``seed``, ``speedrun``, ``best``).
    ``out`` defaults to ``runs/<arch>-<time>``; an existing run is replaced only with ``force``;
    ``resume=True`` continues the stopped run at ``out``. ``seeds`` trains one run per seed
    under ``out/seed<k>`` and returns them all (``repeat``, a :class:`~mnistlab.sweep.repeats.RepeatOptions`:
    that many worker processes, a shared study; the same call again keeps finished seeds and resumes
    an interrupted one; ``resume_command`` is what an interruption names); ``nproc`` trains on that
    many processes (torchrun).
    In a script that torchrun itself started, the processes other than rank 0 get None.
    """
    from mnistlab import frameworks, runs
    from mnistlab.training.distributed import is_main_process

    if nproc is not None:
        out, argv = prepare_torchrun(arch, preset=preset, out=out, force=force, resume=resume, seeds=seeds,
                                     **settings)
        return _torchrun(nproc, argv, out, data_dir, progress)
    if resume:
        _check_resume(arch, out, seeds, settings)
        frameworks.get(runs.read_config(out).framework).train(None, out, data_dir=data_dir, resume=True,
                                                               progress=progress)
    else:
        cfg = train_config(arch, preset=preset, **settings)
        framework = frameworks.get(cfg.framework)
        if seeds is not None:
            from mnistlab.experiments.multiseed import parse_seeds, train_seeds

            framework.check_settings(cfg)  # before the data loads (Framework.train checks each seed again)

            seed_list = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
            out = Path(out) if out else runs.default_run_dir(f"{cfg.arch}-seeds")
            results = train_seeds(cfg, out, seed_list, data_dir=data_dir, force=force, progress=progress,
                                  options=repeat, resume_command=resume_command)
            return [Run(r["run_dir"]) for r in results]
        out = Path(out) if out else runs.default_run_dir(cfg.arch)
        framework.train(cfg, out, data_dir=data_dir, force=force, progress=progress)
    # Inside torchrun (a script run with `torchrun`), only rank 0 wrote the run: the others get None.
    return Run(out) if is_main_process() else None


def _check_resume(arch: str | None, out: Any, seeds: Any, settings: dict[str, Any]) -> None:
    if out is None or seeds is not None or arch is not None or settings:
        raise UserError("resume continues a stopped run with its own settings: give only its folder")


def prepare_torchrun(arch: str | None = None, *, preset: str = "default", out: str | Path | None = None,
                     force: bool = False, resume: bool = False, seeds: Any = None,
                     **settings: Any) -> tuple[Path, list[str]]:
    """The checks rank 0 would make before N processes train one run, made once here (a mistake is one
    line, not one per process): (the run folder, the ``mnistlab train`` arguments each process runs)."""
    from mnistlab import frameworks, runs
    from mnistlab.training.fit import check_before_launch

    if seeds is not None:
        raise UserError("--nproc trains one run; it cannot be combined with --seeds")
    if resume:
        _check_resume(arch, out, seeds, settings)
        cfg = check_before_launch(None, Path(out), resume=True)
        frameworks.get(cfg.framework).require("distributed")
        return Path(out), ["train", "--resume", str(out)]
    cfg = train_config(arch, preset=preset, **settings)
    framework = frameworks.get(cfg.framework)
    framework.check_settings(cfg)
    framework.require("distributed")
    out = Path(out) if out else runs.default_run_dir(cfg.arch)
    check_before_launch(cfg, out, force=force)
    return out, ["train", *_flags(cfg), "--out", str(out)]


def _flags(cfg) -> list[str]:
    """``mnistlab train`` options that rebuild ``cfg`` in another process (torchrun)."""
    flags: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in ("model_args", "transfer") or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        flags += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return flags


def _torchrun(nproc: int, argv: list[str], out: Path, data_dir: str | None, progress: bool) -> Run:
    """``mnistlab <argv>`` on ``nproc`` processes (torchrun); the run they wrote."""
    from mnistlab.training.distributed import launch_torchrun
    from mnistlab.training.loop import TrainingFailed

    argv = [*argv, *(["--data-dir", str(data_dir)] if data_dir else []), *([] if progress else ["--quiet"])]
    try:
        code = launch_torchrun(nproc, argv)
    except KeyboardInterrupt as exc:  # Ctrl-C reached the workers too: each stopped after its last saved epoch
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), f"mnistlab train --resume {out} --nproc {nproc}") from None
    if code != 0:
        raise TrainingFailed(f"{out}: training on {nproc} processes failed; its messages are above")
    return Run(out)


def load(path: str | Path) -> Run:
    """The run at ``path`` (any run directory: PyTorch, Keras, ensemble, transfer, pruned)."""
    return Run(path)


def ensemble(runs: Sequence[Any], *, selection: str = "caruana", temperature: bool = False,
             rounds: int | None = None, out: str | Path | None = None, force: bool = False) -> Run:
    """Combine evaluated runs into an ensemble run (members and weights chosen on validation only)."""
    from mnistlab.ensembles.build import ensemble_runs
    from mnistlab.ensembles.select import DEFAULT_ROUNDS

    result = ensemble_runs([_path(r) for r in runs], selection=selection, temperature=temperature,
                           rounds=rounds or DEFAULT_ROUNDS, out=out, force=force)
    return Run(result["run_dir"])


def compare(runs: Sequence[Any], *, out: str | Path | None = None):
    """Side-by-side comparison (mean ± std over seeds) of evaluated runs; also written under ``out``."""
    from mnistlab.analysis.compare import compare_runs, default_out, write_comparison
    from mnistlab.api.results import Comparison

    dirs = [_path(r) for r in runs]
    result = compare_runs(dirs)
    files = write_comparison(result, Path(out) if out else default_out(dirs))
    return Comparison(result, files)
