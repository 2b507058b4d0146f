"""The framework registry: each framework registers one :class:`Framework` from its own package.

    >>> from mnistlab import frameworks
    >>> frameworks.names()
    ('torch', 'keras')
    >>> torch = frameworks.get("torch")
    >>> torch.can("onnx"), torch.label
    (True, 'PyTorch')
    >>> print(frameworks.TABLE["torch"].why_not("litert"))
    LiteRT export is for Keras runs (TensorFlow converts them); export a PyTorch run to ONNX instead

Every decision that depends on the framework asks its entry: what it can do (:data:`CAPABILITIES`,
with a one-line reason for what it cannot), the file its weights are saved to, and its pieces —
trainer, predictor, explainer, exporter — loaded on first use through the loader functions the
entry was registered with (importing Keras imports TensorFlow: seconds). A missing extra is a
one-line :class:`~mnistlab.errors.UserError`, exit 2, not an ImportError.

Registration happens in :mod:`mnistlab.frameworks.torch_entry` and
:mod:`mnistlab.frameworks.keras`, which import nothing heavy; the modules their loaders name must
not import :mod:`mnistlab.frameworks` itself (only this module), so every arrow points one way.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mnistlab.errors import UserError

if TYPE_CHECKING:
    from mnistlab.config import TrainConfig
    from mnistlab.runconfig import RunConfig

# What a framework may be able to do; an entry lists the ones it can and says why not for the rest.
CAPABILITIES = {
    "resume": "continue a stopped run from its checkpoint",
    "amp": "mixed precision (--amp on)",
    "explain": "Grad-CAM, saliency, filters and feature maps (mnistlab explain, the service's Grad-CAM)",
    "onnx": "ONNX export (mnistlab export --format onnx, serve --backend onnx, bench)",
    "int8": "INT8 static quantization (mnistlab export --format int8)",
    "litert": "LiteRT (TensorFlow Lite) export (mnistlab export --format litert)",
    "saved_model": "TensorFlow SavedModel export (mnistlab export --format saved_model)",
    "prune": "magnitude pruning with fine-tuning (mnistlab prune)",
    "mc_dropout": "MC-dropout uncertainty (mnistlab plots)",
    "transfer": "start from another run's weights (mnistlab transfer)",
    "ema": "an exponential moving average of the weights (--ema-decay)",
    "distributed": "several processes (--nproc, torchrun)",
    "cuda": "training on a GPU",
}

Loader = Callable[[], ModuleType]


@dataclass(frozen=True)
class Framework:
    """One framework: its facts, its capabilities and loaders of its pieces.

    ``trainer``: a module with ``train(cfg, out, *, data_dir, resume, force, progress, data,
    config_extra)`` and ``build(cfg, data, device, ctx, run_dir, threads)`` → (loop step, RunConfig);
    ``predictor``: a module with ``predictor(run_dir, config)`` → uint8 images ``[N, H, W]`` →
    logits, ``inference_parts(run_dir, config, threads)`` → (model call, uint8 → prepared batch) and
    ``model(run_dir)`` → the framework's own model object;
    ``explainer``: a module with ``explainer(run_dir, config)`` (see :mod:`mnistlab.explain.backend`);
    ``exporter``: a module with ``export_onnx(run_dir, *, data_dir, threads)`` and, for its other
    formats (``litert``, ``saved_model``), ``export_format(run_dir, fmt, *, data_dir, threads)``; or None.
    """

    name: str
    label: str
    model_file: str  # the file in a run directory that holds the weights
    packages: tuple[str, ...]  # top-level packages it needs, checked without importing them
    install: str  # the command that installs them
    capabilities: frozenset[str]
    reasons: Mapping[str, str]  # capability it lacks → one line saying why and what to do instead
    trainer: Loader
    predictor: Loader
    explainer: Loader
    exporter: Loader | None = None
    run_prefix: str = ""  # before the arch in folders holding runs of several frameworks ("keras-simple-s0")
    explain_packages: tuple[str, ...] = ()  # what its explainer needs beyond the framework (captum for PyTorch)
    explain_install: str = ""

    def __post_init__(self) -> None:
        unknown = (self.capabilities | set(self.reasons)) - set(CAPABILITIES)
        assert not unknown, f"{self.name}: unknown capabilities {sorted(unknown)}"
        missing = set(CAPABILITIES) - self.capabilities - set(self.reasons)
        assert not missing, f"{self.name}: say why it cannot do {sorted(missing)}"

    # --- facts -----------------------------------------------------------------------------
    def available(self) -> bool:
        """Whether the framework's packages can be imported (nothing is imported)."""
        return all(importlib.util.find_spec(name) is not None for name in self.packages)

    def require_installed(self) -> "Framework":
        if not self.available():
            raise UserError(f"{self.label} is not installed; {self.install}")
        return self

    def can(self, capability: str) -> bool:
        assert capability in CAPABILITIES, capability
        return capability in self.capabilities

    def why_not(self, capability: str) -> str | None:
        """Why this framework cannot do ``capability`` (one line), or None when it can."""
        return None if self.can(capability) else self.reasons[capability]

    def require(self, capability: str) -> None:
        """A one-line :class:`UserError` naming the framework when it cannot do ``capability``."""
        reason = self.why_not(capability)
        if reason:
            raise UserError(f"a {self.label} run: {reason}")

    def check_settings(self, cfg: "TrainConfig") -> None:
        """The training settings ask only for what this framework can do."""
        # --amp auto asks nothing: a framework without mixed precision resolves it to float32.
        wanted = {"ema": cfg.ema_decay > 0, "transfer": bool(cfg.transfer), "amp": cfg.amp == "on",
                  "cuda": cfg.device == "cuda"}
        for capability, asked in wanted.items():
            if asked and not self.can(capability):
                raise UserError(self.reasons[capability])

    def check_run(self, config: "RunConfig", run_dir: str | Path) -> None:
        """A run config claiming this framework names its weight file, and a kind it can write."""
        from mnistlab.runcheck import fail

        if config.model_file is not None and config.model_file != self.model_file:
            raise fail(run_dir, f"model_file {config.model_file!r:.60} is not {self.model_file!r}")
        if config.kind == "prune" and not self.can("prune"):
            raise fail(run_dir, f"a prune run of framework {self.name!r}, which does not prune")

    # --- pieces, loaded on first use -----------------------------------------------------------
    def train(self, cfg: "TrainConfig | None", out: str | Path, **kw: Any) -> dict[str, Any]:
        """Train ``cfg`` into ``out`` (or continue it with ``resume=True``); the training summary."""
        if cfg is not None:
            self.check_settings(cfg)
        return self.require_installed().trainer().train(cfg, out, **kw)

    def build(self, *args: Any, **kw: Any) -> tuple[Any, "RunConfig"]:
        """The trainer's ``build``: (its loop step, the run's config); throughput timing uses it."""
        return self.require_installed().trainer().build(*args, **kw)

    def predict_function(self, run_dir: Path, config: "RunConfig") -> Callable[[Any], Any]:
        """uint8 images ``[N, H, W]`` → logits ``[N, classes]`` for a run of this framework."""
        return self.require_installed().predictor().predictor(run_dir, config)

    def load_model(self, run_dir: str | Path) -> Any:
        """The run's model as the framework's own object (``torch.nn.Module``, ``keras.Model``)."""
        return self.require_installed().predictor().model(run_dir)

    def inference_parts(self, run_dir: Path, config: "RunConfig", threads: int) -> tuple[Callable, Callable]:
        return self.require_installed().predictor().inference_parts(run_dir, config, threads)

    def can_explain_here(self) -> bool:
        """Whether this framework explains and what its explainer needs is installed (nothing imported)."""
        return self.can("explain") and self.available() and \
            all(importlib.util.find_spec(name) is not None for name in self.explain_packages)

    def explainer_for(self, run_dir: str | Path, config: "RunConfig") -> Any:
        """An object with the methods of :class:`mnistlab.explain.backend.Explainer` for the run."""
        self.require("explain")
        return self.require_installed().explainer().explainer(run_dir, config)

    def export_module(self) -> ModuleType:
        """The module with ``export_onnx``, or a one-line :class:`UserError` saying why not."""
        self.require("onnx")
        assert self.exporter is not None, f"{self.name} says it can export: give it an exporter"
        return self.require_installed().exporter()

    def export(self, run_dir: str | Path, fmt: str, **kw: Any) -> dict[str, Any]:
        """Export a run of this framework in ``fmt`` (``onnx``, ``litert``, ``saved_model``); the check report."""
        self.require(fmt)
        module = self.export_module()
        return module.export_onnx(run_dir, **kw) if fmt == "onnx" else module.export_format(run_dir, fmt, **kw)


TABLE: dict[str, Framework] = {}


def register(framework: Framework) -> Framework:
    if framework.name in TABLE:
        raise ValueError(f"framework {framework.name!r} is registered twice")
    TABLE[framework.name] = framework
    return framework


def names() -> tuple[str, ...]:
    """The registered frameworks, in registration order (the default first)."""
    return tuple(TABLE)


def check_name(name: str) -> Framework:
    """The entry of ``name``, installed or not; a one-line :class:`UserError` naming the choices."""
    if name not in TABLE:
        raise UserError(f"unknown framework {name!r:.40}; choose one of: {', '.join(TABLE)}")
    return TABLE[name]


def get(name: str) -> Framework:
    """The entry of ``name``, after checking that its extra is installed."""
    return check_name(name).require_installed()


def available(name: str) -> bool:
    """Whether ``name``'s packages can be imported."""
    return check_name(name).available()


def label(name: str) -> str:
    return TABLE[name].label if name in TABLE else name


def for_run(config: "RunConfig", run_dir: str | Path) -> Framework:
    """The framework of a (non-ensemble) run, after checking the config fits it; installed, to load the run."""
    return of_run(config, run_dir).require_installed()


def of_run(config: "RunConfig", run_dir: str | Path) -> Framework:
    """The framework of a (non-ensemble) run, after checking the config fits it, installed or not:
    what it can do is known without its packages."""
    from mnistlab.runcheck import fail

    if config.is_ensemble:
        raise UserError(f"{run_dir}: an ensemble; this needs one model's run: give one of its members")
    if config.framework not in TABLE:
        raise fail(run_dir, f"framework {config.framework!r:.40} is not one of {', '.join(TABLE)}")
    entry = TABLE[config.framework]
    entry.check_run(config, run_dir)
    return entry
