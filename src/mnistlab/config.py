"""Typed run settings and named presets: the only place training defaults live.

    >>> cfg = TrainConfig(arch="simple", epochs=2)
    >>> cfg.scheduler
    'onecycle'
    >>> preset("seed").scheduler
    'step'

Each field carries its ``--help`` text (and fixed choices) in its metadata; ``mnistlab train``'s
options are generated from the fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mnistlab.errors import UserError

SCHEMA_VERSION = 1
SCHEDULERS = ("onecycle", "step", "none")
OPTIMIZERS = ("adam", "adamw")
MONITORS = ("val_loss", "val_acc")
DEVICES = ("auto", "cpu", "cuda")
AMP_CHOICES = ("auto", "on", "off")
# --amp's default. "auto" (fp16 on CUDA; bf16 on a CPU with native bf16 units when a short timing
# finds it faster, float32 elsewhere: training/precision.py) becomes the default once the accuracy
# table on a native-bf16 CPU (benchmarks/amp_accuracy.py, issue 23) shows bf16 loses nothing;
# until then "off", the behaviour of every run so far.
DEFAULT_AMP = "off"
# Values older config.json, preset and sweep files hold, in today's terms: amp was a bool.
LEGACY_VALUES: dict[str, dict[bool, str]] = {"amp": {True: "on", False: "off"}}

# Transfer learning (``mnistlab transfer``): what a run starting from another run's weights trains.
# A recipe is (the body's learning rate as a fraction of --lr, the fraction of the epochs during
# which the body stays frozen and only the new classifier trains). The body is every parameter
# but the classifier (:func:`mnistlab.models.heads.classifier_name`).
TRANSFER_RECIPES: dict[str, tuple[float, float]] = {
    "all": (1.0, 0.0),          # one learning rate for every layer
    "lower-body": (1 / 3, 0.0),  # the body at a third of the head's learning rate
    "head-first": (1.0, 0.2),   # the first fifth of the epochs trains the head only, then everything
    "frozen": (0.0, 1.0),       # a linear probe: the body never trains (features mode)
}
# mode → the recipes it may use (the first is its default when no choice is made on validation)
TRANSFER_MODES: dict[str, tuple[str, ...]] = {
    "finetune": ("all", "lower-body", "head-first"),
    "features": ("frozen",),
    "scratch": ("all",),  # random initialisation: the baseline
}

# OneCycle, as PyTorch's OneCycleLR and the Keras twin both follow it: a quarter of the steps
# warming up from lr/25, then a cosine down to lr/25/1e4, with Adam's beta1 moving 0.95 → 0.85 → 0.95.
ONECYCLE_PCT_START = 0.25
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
ONECYCLE_BETA1 = (0.95, 0.85)  # (at the ends, at the peak)

# The (seed, epoch) generator formula. Every epoch's shuffle, augmentation and dropout draw from
# a generator seeded with epoch_seed(seed, epoch), so a resumed run replays exactly the batches an
# uninterrupted one would have seen. The stride is a prime larger than any epoch count, so two
# (seed, epoch) pairs never share a seed; ranks of a multi-process run add RANK_STREAM × rank.
SEED_STRIDE = 100_003
RANK_STREAM = 2**32


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of ``epoch``'s generator (``rank`` > 0: that process's own augmentation/dropout stream).

    >>> epoch_seed(0, 1), epoch_seed(2, 3)
    (1, 200009)
    """
    return seed * SEED_STRIDE + epoch + rank * RANK_STREAM


def opt(default: Any, help: str, *, choices: tuple[str, ...] = (), shown: str = "",
        bare: tuple[str, str] | None = None) -> Any:
    """A dataclass field and what ``--help`` says of it: its help text, its fixed ``choices`` (if any),
    where the default is None what None means (``shown``), and for a choice that was once a switch
    the values of ``--x`` alone and of ``--no-x`` (``bare``)."""
    return field(default=default, metadata={"help": help, "choices": choices, "shown": shown, "bare": bare})


def legacy_value(name: str, value: Any) -> Any:
    """``value`` of the setting ``name`` in today's terms (``amp = true`` of an older file → ``"on"``).

    >>> legacy_value("amp", True), legacy_value("amp", "auto"), legacy_value("lr", 1)
    ('on', 'auto', 1)
    """
    table = LEGACY_VALUES.get(name)
    return table[value] if table is not None and isinstance(value, bool) else value


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run does.

    Every field but ``model_args`` and ``transfer`` (metadata ``cli: False``) is an option of
    ``mnistlab train``: the same name with dashes, this type, this help, this default.
    """

    # The names of models, data sets and frameworks come from their registries, which sit above
    # this module; the CLI fills in those choices.
    arch: str = opt("simple", "model name from the registry (mnistlab models)")
    dataset: str = opt("mnist", "data set to train on: mnist, fashion-mnist or one added with 'mnistlab data "
                                "add'; its own defaults apply under any preset and flag")
    framework: str = opt("torch", "keras: Keras 3 on TensorFlow (needs mnistlab[keras])")
    epochs: int = opt(10, "upper bound; early stopping may end sooner")
    batch_size: int = opt(128, "images per optimiser step")
    lr: float = opt(3e-3, "Adam's learning rate (OneCycle's peak)")
    optimizer: str = opt("adam", "adam (L2 added to the gradient, the seed's) or adamw (decoupled)", choices=OPTIMIZERS)
    weight_decay: float = opt(1e-4, "L2 penalty (decoupled with adamw)")
    beta1: float | None = opt(None, "Adam's beta1; a number fixes it",
                              shown="0.9, cycled 0.95 → 0.85 → 0.95 by OneCycle")
    beta2: float = opt(0.999, "Adam's beta2")
    fused_optimizer: bool = opt(False, "Adam's fused kernel: one pass over all parameters (on 2 CPU cores ~2.7× faster "
                                       "than the default per-tensor loop); rounding differs in the last bits")
    label_smoothing: float = opt(0.0, "training loss against (1 - e) × one-hot + e / classes; validation loss stays plain")
    scheduler: str = opt("onecycle", "onecycle, step (×gamma every step_size epochs) or none", choices=SCHEDULERS)
    step_size: int = opt(7, "epochs between StepLR decays")
    gamma: float = opt(0.1, "StepLR decay factor")
    patience: int = opt(3, "epochs without improvement of `monitor` before stopping; 0 = never stop")
    monitor: str = opt("val_loss", "what picks the best checkpoint and drives early stopping", choices=MONITORS)
    seed: int = opt(0, "seed for initialisation, shuffling, augmentation and dropout")
    augment: bool = opt(True, "random rotation, shift and zoom of training images")
    degrees: float = opt(10.0, "rotation range ±degrees")
    translate: float = opt(0.1, "shift range ± this fraction of the side")
    scale: float = opt(0.1, "zoom range 1 ± scale")
    hflip: float = opt(0.0, "chance that a training image is mirrored left-right (clothing, never digits); 0 = off")
    erasing: float = opt(0.0, "random erasing: chance that a training image loses one random rectangle; 0 = off")
    ema_decay: float = opt(0.0, "keep an exponential moving average of the weights with this decay (e.g. 0.999) "
                                "and evaluate, select and save it instead of the raw weights; 0 = off (PyTorch only)")
    val_size: int = opt(5000, "images carved from the training set, stratified, for every decision")
    split_seed: int = opt(0, "seed of that carve; fixed, so runs with different seeds share one split")
    train_subset: int | None = opt(None, "train on this many images (after the validation carve)", shown="all")
    threads: int | None = opt(None, "torch intra-op threads", shown="all cores")
    channels_last: bool = opt(True, "NHWC memory layout: ~1.4× faster convolutions on CPU")
    amp: str = opt(DEFAULT_AMP, "mixed precision: on = bf16 autocast on a CPU, fp16 with loss scaling on CUDA; auto "
                                "= fp16 on CUDA, bf16 on a CPU with native bf16 (AMX, AVX-512 BF16) if a short timing "
                                "finds it faster, else float32; --amp alone = on", choices=AMP_CHOICES, bare=("on", "off"))
    cuda_graph: bool = opt(False, "on a GPU, replay each training step as a captured CUDA graph (one launch instead "
                                  "of hundreds; PyTorch, one process, no --amp/--ema-decay; ignored on a CPU)")
    device: str = opt("auto", "auto (CUDA when present), cpu or cuda; data, model and loop all live there",
                      choices=DEVICES)
    tensorboard: bool = opt(False, "also write TensorBoard event files to <run>/tensorboard/")
    model_args: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "extra keyword arguments for the model factory", "cli": False})
    transfer: dict[str, str] = field(default_factory=dict, metadata={
        "help": "empty, or {mode, recipe} of a run started from another run's weights (mnistlab transfer)",
        "cli": False})

    def __post_init__(self) -> None:
        object.__setattr__(self, "amp", legacy_value("amp", self.amp))  # amp=True of older code and files
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.weight_decay >= 0, "--weight-decay must be 0 or more"),
            (self.beta1 is None or 0 <= self.beta1 < 1, "--beta1 must be in [0, 1)"),
            (0 <= self.beta2 < 1, "--beta2 must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {', '.join(SCHEDULERS)}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.monitor in MONITORS, f"--monitor must be one of {', '.join(MONITORS)}"),
            (self.patience >= 0, "--patience must be 0 or more"),
            (self.val_size >= 10, "--val-size must be at least 10"),
            (self.train_subset is None or self.train_subset >= 10, "--train-subset must be at least 10"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
            (0 <= self.degrees <= 180, "--degrees must be between 0 and 180"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
            (self.amp in AMP_CHOICES, f"--amp must be one of {', '.join(AMP_CHOICES)}"),
            (0 <= self.erasing <= 1, "--erasing must be between 0 and 1"),
            (0 <= self.hflip <= 1, "--hflip must be between 0 and 1"),
            (0 <= self.translate <= 0.5, "--translate must be between 0 and 0.5"),
            (0 <= self.scale < 1, "--scale must be at least 0 and below 1"),
            (0 <= self.ema_decay < 1, "--ema-decay must be 0 (off) or below 1, e.g. 0.999"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.transfer:
            check_transfer(self.transfer)
        # Whether the framework exists and can do what these settings ask (EMA, transfer, ...) is
        # its registry entry's to say, when training starts (mnistlab.frameworks.Framework.train).

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def check_transfer(transfer: dict[str, Any]) -> None:
    """A run's ``transfer`` setting names a known mode and one of that mode's recipes.

    >>> check_transfer({"mode": "finetune", "recipe": "head-first"})
    >>> check_transfer({"mode": "features", "recipe": "all"})  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    mnistlab.errors.UserError: transfer mode 'features' uses the recipe frozen, not 'all'
    """
    mode, recipe = transfer.get("mode"), transfer.get("recipe")
    if set(transfer) != {"mode", "recipe"} or not isinstance(mode, str) or mode not in TRANSFER_MODES:
        raise UserError(f"transfer must be {{mode, recipe}} with mode one of {', '.join(TRANSFER_MODES)}")
    if recipe not in TRANSFER_MODES[mode]:
        raise UserError(f"transfer mode {mode!r} uses the recipe {' or '.join(TRANSFER_MODES[mode])}, "
                        f"not {recipe!r:.40}")


# Named recipes. "seed" is the original project's recipe, kept for comparison; the default
# (OneCycle, light weight decay) reached the same accuracy in fewer epochs in our measurements
# (see README, "Choosing the defaults"). "best" aims at the highest honest single-model accuracy
# in about an hour of training on 2 CPU cores (docs/quickstart.md): `deeper`, 36 OneCycle epochs,
# the default augmentation. Chosen among four candidates (stronger augmentation + erasing + EMA,
# the default augmentation with and without an EMA, a lower lr) on mean validation accuracy over
# seeds 0-2, never on test; checkpoint selection on validation loss.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "seed": dict(optimizer="adam", lr=1e-3, weight_decay=1e-3, scheduler="step", step_size=7,
                 gamma=0.1, patience=3, batch_size=128, degrees=10.0, epochs=20),
    # Time to 99% test accuracy on a CPU (docs/speed.md): one OneCycle epoch of a small CNN, no
    # augmentation, Adam with the fast public recipe's (0.7, 0.9) betas and no momentum cycling;
    # a 1,000-image validation split leaves 59,000 images to learn from; Adam's fused kernel (5% of
    # the CPU step saved). On a GPU each step is one CUDA graph replay (training/cuda_graph.py),
    # with the capturable Adam instead; a CPU ignores that setting. Mixed precision stays off whatever
    # --amp's default: its loss scaler cannot be captured, and fp16 did not help this small model.
    "speedrun": dict(arch="speedrun", epochs=1, batch_size=256, lr=1e-2, beta1=0.7, beta2=0.9,
                     weight_decay=0.0, label_smoothing=0.1, scheduler="onecycle", augment=False, patience=0,
                     val_size=1000, channels_last=True, cuda_graph=True, fused_optimizer=True, amp="off"),
    "best": dict(arch="deeper", epochs=36, scheduler="onecycle", lr=3e-3, patience=0, monitor="val_loss"),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from the preset ``name`` with ``overrides`` on top (None values are ignored).

    >>> preset("best").arch, preset("best", arch="resnet", epochs=None).epochs
    ('deeper', 36)
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return TrainConfig(**{**dataset_defaults(overrides.get("dataset", "mnist")), **PRESETS[name], **overrides})


# Settings that change how fast a run trains or what it logs, not what it learns: a run stored with
# other values of these is still the same run (reusing a finished member, resuming a transfer).
NOT_LEARNT = ("threads", "device", "tensorboard")


def learnt_difference(stored: Mapping[str, Any], cfg: TrainConfig) -> tuple[str, Any, Any] | None:
    """The first setting outside :data:`NOT_LEARNT` where ``cfg`` differs from the ``stored`` settings:
    (name, stored value, new value); None when they would learn the same.

    >>> learnt_difference(TrainConfig(threads=1).to_dict(), TrainConfig(threads=2)) is None
    True
    >>> learnt_difference(TrainConfig().to_dict(), TrainConfig(lr=0.01))
    ('lr', 0.003, 0.01)
    """
    for key, value in cfg.to_dict().items():
        if key not in NOT_LEARNT and stored.get(key) != value:
            return key, stored.get(key), value
    return None


def dataset_defaults(dataset: str) -> dict[str, Any]:
    """The data set's own training defaults (its registry entry), under any preset and flag.

    >>> dataset_defaults("fashion-mnist")["hflip"], dataset_defaults("mnist")
    (0.5, {})
    """
    from mnistlab.data import registry

    try:
        return dict(registry.get(dataset).train_defaults)
    except UserError:  # an unknown name is reported, in one line, where the data is loaded
        return {}


def capped_val_size(dataset: str, val_size: int) -> int:
    """``val_size``, or the data set's own validation size when that is smaller: a fixed split size (the
    smoke budget's, the transfer recipe's) must still fit a small added data set.

    >>> capped_val_size("mnist", 1000)
    1000
    """
    own = dataset_defaults(dataset).get("val_size")
    return min(val_size, own) if isinstance(own, int) else val_size


MAX_PRESET_FILE = 64 * 1024  # a preset file holds a few dozen settings; anything bigger is not one


def setting_type(name: str) -> type:
    """The plain type of the TrainConfig field ``name`` (``int | None`` → int).

    >>> setting_type("lr"), setting_type("train_subset"), setting_type("augment")
    (<class 'float'>, <class 'int'>, <class 'bool'>)
    """
    hint = typing.get_type_hints(TrainConfig)[name]
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)


def check_name(name: str, where: str) -> str:
    """``name`` if it is a training setting (an option of ``mnistlab train``), else a did-you-mean UserError."""
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see 'mnistlab train --help'"
        raise UserError(f"{where}: unknown setting {name!r:.40}{hint}")
    return name


def check_setting(name: str, value: Any, where: str) -> Any:
    """``value`` for the training setting ``name`` (an int passes for a float), or a one-line UserError.

    >>> check_setting("lr", 1, "x.toml")
    1.0
    >>> check_setting("lrr", 1, "x.toml")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    mnistlab.errors.UserError: x.toml: unknown setting 'lrr'; did you mean 'lr'?
    """
    kind = setting_type(check_name(name, where))
    value = legacy_value(name, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{where}: {name} must be {kind.__name__}, not {type(value).__name__} ({value!r:.40})")
    return value


def read_preset_file(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """(the preset it builds on or None, its settings) from a TOML preset file, checked.

    A preset file holds training settings by the names of ``mnistlab train`` (underscores), and
    optionally ``preset = "NAME"``: what ``mnistlab sweep --export-preset`` writes and
    ``mnistlab train --preset-file`` reads. It is data: parsed as TOML, its size checked first.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(read_settings_text(path, "preset file"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not a TOML preset file ({exc})") from None
    return settings_table(raw, str(path))


def read_settings_text(path: Path, what: str) -> str:
    """The text of a file of settings (a preset file, a sweep file: ``what``), its size checked before
    it is read; a one-line UserError when it is missing, too large or not UTF-8."""
    if not path.is_file():
        raise UserError(f"{path}: no such {what}")
    if path.stat().st_size > MAX_PRESET_FILE:
        raise UserError(f"{path}: larger than {MAX_PRESET_FILE // 1024} KiB; not a {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None


def settings_table(raw: Mapping[str, Any], where: str) -> tuple[str | None, dict[str, Any]]:
    """(``preset`` or None, the other entries checked as training settings) of a parsed TOML table."""
    name = raw.get("preset")
    if name is not None and name not in PRESETS:
        raise UserError(f"{where}: unknown preset {name!r:.40}; choose one of: {', '.join(PRESETS)}")
    return name, {k: check_setting(k, v, where) for k, v in raw.items() if k != "preset"}
