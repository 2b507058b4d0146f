"""A run's config as a frozen, typed object: what every command reads from a run directory.

    >>> from mnistlab.runconfig import DataFacts, RunConfig
    >>> from mnistlab.config import TrainConfig
    >>> data = DataFacts(class_names=tuple("0123456789"), num_classes=10, mean=0.1307, std=0.3081,
    ...                  image_size=28, in_channels=1, val_size=5000, split_seed=0)
    >>> cfg = RunConfig(kind="train", framework="torch", dataset="mnist", arch="simple", data=data,
    ...                 train=TrainConfig(arch="simple"), params=93322)
    >>> cfg.train.lr, cfg.data.num_classes, cfg.is_ensemble
    (0.003, 10, False)
    >>> RunConfig.from_dict(cfg.to_dict(), "runs/x") == cfg
    True

:meth:`RunConfig.from_dict` checks the raw ``config.json`` first (:mod:`mnistlab.runcheck`:
types, ranges, known keys; a run directory may come from anyone), so a ``RunConfig`` that exists
is a valid one. Every writer builds one and :func:`mnistlab.runs.write_config` writes
:meth:`RunConfig.to_dict`; ``dataclasses.replace`` derives one run's config from another's.
Whether the framework named here is installed and can do what is asked is the framework
registry's question (:mod:`mnistlab.frameworks`), not this module's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from mnistlab.config import SCHEMA_VERSION, TrainConfig
from mnistlab.runcheck import fail, validate_config

ENSEMBLE = "ensemble"  # an ensemble's kind, and the name in its ``framework`` field


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields, each made plain."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    """Mappings, tuples and dataclasses → the dicts and lists JSON writes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if hasattr(value, "to_dict") else _fields(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class DataFacts:
    """The data set as the run saw it: classes, normalisation, image shape, the validation carve.

    An ensemble's config needs only the class names; the rest is None there when its builder
    did not copy it from a member.
    """

    class_names: tuple[str, ...]
    num_classes: int
    mean: float | None = None
    std: float | None = None
    image_size: int | None = None
    in_channels: int | None = None
    val_size: int | None = None
    split_seed: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    # SHA-256 of a data set added with ``mnistlab data add`` (None for the built-in, pinned ones):
    # a later command checks that the store still holds these very images under the name.
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _fields(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataFacts":
        return cls(**{**data, "class_names": tuple(data["class_names"])})


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: its run directory, its weight and temperature, what it scored."""

    run_dir: str
    arch: str | None = None
    framework: str | None = None
    seed: int | None = None
    weight: float | None = None
    count: int | None = None
    temperature: float | None = None
    val_accuracy: float | None = None
    val_nll: float | None = None
    test_accuracy: float | None = None
    params: int | None = None
    model_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Member":
        return cls(**data)

    @property
    def used(self) -> bool:
        """Whether the ensemble predicts with this member (selection may give it weight 0)."""
        return self.weight is None or self.weight > 0


@dataclass(frozen=True)
class RecipeTrial:
    """One transfer recipe tried on validation (``mnistlab transfer --recipe auto``)."""

    recipe: str
    best_val_acc: float
    best_val_loss: float
    best_epoch: int


@dataclass(frozen=True)
class TransferFrom:
    """Where a transfer run's starting weights came from."""

    run: str
    sha256: str
    dataset: str
    arch: str
    initialised: str  # "body" (the source's weights) or "random" (the scratch baseline)
    recipe_choice: str | None = None
    recipe_trials: tuple[RecipeTrial, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = _fields(self)
        if self.recipe_choice is None:
            del out["recipe_choice"], out["recipe_trials"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TransferFrom":
        trials = tuple(RecipeTrial(**t) for t in data.get("recipe_trials", ()))
        return cls(**{**data, "recipe_trials": trials})


@dataclass(frozen=True)
class SweepTrial:
    """The trial of a hyper-parameter sweep (``mnistlab sweep``) that trained this run."""

    study: str
    trial: int
    params: Mapping[str, Any] = field(default_factory=dict)  # the searched settings, by TrainConfig's names

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``config.json`` says about a run; built only from valid values.

    ``kind`` is ``train``, ``prune`` (a pruned copy of a PyTorch run) or ``ensemble``. A
    training or pruned run has ``arch`` and ``train``; an ensemble has ``members``.
    """

    kind: str
    framework: str
    dataset: str
    data: DataFacts
    arch: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    params: int | None = None
    train: TrainConfig | None = None
    threads: int | None = None
    model_file: str | None = None
    device: str | None = None
    world_size: int | None = None
    backend: str | None = None  # torch.distributed's; None for a one-process run
    budget: Mapping[str, Any] = field(default_factory=dict)  # quickstart's plan (mnistlab.budget.Plan.record)
    transfer_from: TransferFrom | None = None
    sweep: SweepTrial | None = None
    pruned_from: str | None = None
    pruning: Mapping[str, Any] = field(default_factory=dict)
    members: tuple[Member, ...] = ()
    selection: Mapping[str, Any] = field(default_factory=dict)
    weighting: str | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    created: str | None = None

    def __post_init__(self) -> None:
        for name in ("model_args", "budget", "pruning", "selection", "environment"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def is_ensemble(self) -> bool:
        return self.kind == ENSEMBLE

    @property
    def seed(self) -> int | None:
        """The training seed (None for an ensemble)."""
        return self.train.seed if self.train is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` object: the schema version, then every field that is set (``model_args`` always)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name != "model_args" and isinstance(value, (Mapping, tuple)) and not value):
                continue
            out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, raw: Any, run_dir: str | Path) -> "RunConfig":
        """Check ``raw`` (a parsed config.json) and build the typed config; one-line UserError if invalid."""
        config = validate_config(raw, run_dir)
        config.pop("schema_version", None)
        config["data"] = DataFacts.from_dict(config["data"])
        if "train" in config:
            config["train"] = TrainConfig.from_dict(config["train"])
        if "transfer_from" in config:
            config["transfer_from"] = TransferFrom.from_dict(config["transfer_from"])
        if "sweep" in config:
            config["sweep"] = SweepTrial(**config["sweep"])
        known = {f.name for f in dataclasses.fields(Member)}
        for i, member in enumerate(config.get("members", ())):
            if set(member) - known:
                raise fail(run_dir, f"unknown key members[{i}].{sorted(set(member) - known)[0]!r}")
        config["members"] = tuple(Member.from_dict(m) for m in config.get("members", ()))
        return cls(**config)
