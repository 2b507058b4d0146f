"""A sweep's search space, read from TOML into typed objects and checked against the training settings.

    >>> space = parse_space('''
    ... [base]
    ... arch = "simple"
    ... epochs = 2
    ... [search]
    ... lr = { low = 1e-3, high = 1e-2, log = true }
    ... batch_size = [64, 128]
    ... ''', "space.toml")
    >>> [p.name for p in space.params], space.base["epochs"]
    (['lr', 'batch_size'], 2)
    >>> space.train_config({"lr": 0.005, "batch_size": 64}).batch_size
    64

``[base]`` holds fixed settings by the names ``mnistlab train`` uses (underscores), optionally
``preset = "NAME"``; ``[search]`` holds each searched setting as a list of choices or a range
``{low, high, log, step}`` (an int setting gets an int range), or, under a name of your own, a
table of named bundles of settings — candidate recipes that differ in several settings at once:

    [search.recipe]
    plain = {}
    mirror = { hflip = 0.5, degrees = 0.0 }

A trial picks one bundle by name (recorded as ``recipe = "mirror"``); its settings go over the
base. A setting may be in one searched thing only. Every name is checked against
:class:`~mnistlab.config.TrainConfig` (a misspelt one gets a did-you-mean), every choice and both
ends of every range must make a valid config, and an arch must be a registered model.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from mnistlab.config import (TrainConfig, check_name, check_setting, preset, read_settings_text, setting_type,
                             settings_table)
from mnistlab.errors import UserError

RANGE_KEYS = {"low", "high", "log", "step"}
MAX_CHOICES = 1000
MAX_GRID = 10_000  # grid points: far more trials than any machine runs, less than a typo's product


@dataclass(frozen=True)
class Choice:
    """A categorical setting: one of ``values``."""

    name: str
    values: tuple[Any, ...]

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, list(self.values))

    def grid(self) -> tuple[Any, ...]:
        return self.values


@dataclass(frozen=True)
class Range:
    """A numeric setting in ``[low, high]``: an int or float, on a log scale or with a ``step``."""

    name: str
    kind: type
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: Any) -> Any:
        if self.kind is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> tuple[Any, ...]:
        """The range's points, when it has a step (an int range always has: 1)."""
        if self.kind is float and self.step is None:
            raise UserError(f"--sampler grid: {self.name} is a continuous range; give it a step or a list")
        step = self.step or 1
        count = round((self.high - self.low) / step) + 1
        return tuple(self.kind(self.low + i * step) for i in range(count))


@dataclass(frozen=True)
class Bundles:
    """A choice among named bundles of settings (``[search.NAME]`` of tables): the trial records the name."""

    name: str
    options: Mapping[str, Mapping[str, Any]]

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self.options)

    def suggest(self, trial: Any) -> str:
        return trial.suggest_categorical(self.name, list(self.options))

    def grid(self) -> tuple[str, ...]:
        return self.values


Param = Choice | Range | Bundles


@dataclass(frozen=True)
class SweepSpace:
    """Fixed settings (``preset`` underneath ``base``) and the searched ``params``; ``text`` is the TOML read."""

    base: Mapping[str, Any]
    params: tuple[Param, ...]
    preset: str = "default"
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", MappingProxyType(dict(self.base)))

    def settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The base, then the trial's ``values`` with each bundle's name replaced by its settings (no preset).

        >>> space = parse_space('[base]\\nepochs = 2\\n[search.recipe]\\nplain = {}\\nmirror = { hflip = 0.5 }\\n', "s")
        >>> space.settings({"recipe": "mirror"})
        {'epochs': 2, 'hflip': 0.5}
        """
        out = dict(self.base)
        bundles = {p.name: p for p in self.params if isinstance(p, Bundles)}
        for name, value in values.items():
            if name in bundles:
                out.update(bundles[name].options[value])
            else:
                out[name] = value
        return out

    def train_config(self, values: Mapping[str, Any], **extra: Any) -> TrainConfig:
        """The settings of one trial: the preset, the base, the trial's ``values``, then ``extra``."""
        return preset(self.preset, **{**self.settings(values), **extra})

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the params' points (``--sampler grid``), in a fixed order."""
        points = [p.grid() for p in self.params]
        size = 1
        for p in points:
            size *= len(p)
        if size > MAX_GRID:
            raise UserError(f"--sampler grid: {size} combinations (more than {MAX_GRID}); narrow the search")
        names = [p.name for p in self.params]
        return [dict(zip(names, combo)) for combo in itertools.product(*points)]


def read_space(path: str | Path) -> SweepSpace:
    """The space in the TOML file ``path``; a one-line UserError for anything wrong with it."""
    path = Path(path)
    return parse_space(read_settings_text(path, "sweep file"), str(path))


def parse_space(text: str, where: str) -> SweepSpace:
    """The space in the TOML ``text`` (``where`` names it in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(raw) - {"base", "search"}
    if unknown:
        raise UserError(f"{where}: unknown table [{min(unknown)}]; a sweep file has [base] and [search]")
    if not isinstance(raw.get("base", {}), dict) or not isinstance(raw.get("search"), dict) or not raw["search"]:
        raise UserError(f"{where}: needs a [search] table naming at least one setting (and optionally [base])")
    name, base = settings_table(raw.get("base", {}), f"{where} [base]")
    params = tuple(_param(key, value, f"{where} [search]") for key, value in raw["search"].items())
    _check_once(base, params, where)
    space = SweepSpace(base=base, params=params, preset=name or "default", text=text)
    _check_values(space, where)
    return space


def _check_once(base: Mapping[str, Any], params: tuple[Param, ...], where: str) -> None:
    """Each setting searched in one place only, and not also fixed in [base] (a bundle may override the base)."""
    both = set(base) & {p.name for p in params}
    if both:
        raise UserError(f"{where}: {min(both)} is both fixed in [base] and searched in [search]")
    owner: dict[str, str] = {}
    for p in params:
        names = {k for o in p.options.values() for k in o} if isinstance(p, Bundles) else {p.name}
        for name in names:
            if owner.setdefault(name, p.name) != p.name:
                raise UserError(f"{where}: {name} is set by both {owner[name]} and {p.name} in [search]; "
                                "let one of them set it")


def _bundles(name: str, value: dict[str, Any], where: str) -> Bundles:
    """``[search.NAME]`` of named tables of settings; NAME must not itself be a setting."""
    if name in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise UserError(f"{where}: {name} is a setting: give it a list or a range, or name the bundles otherwise")
    if not 1 <= len(value) <= MAX_CHOICES:
        raise UserError(f"{where}: {name} needs between 1 and {MAX_CHOICES} bundles")
    options = {}
    for label, table in value.items():
        if not isinstance(table, dict):
            raise UserError(f"{where}: {name}.{label} must be a table of settings, e.g. {{ lr = 0.001 }}")
        preset_name, settings = settings_table(table, f"{where} {name}.{label}")
        if preset_name is not None:
            raise UserError(f"{where}: {name}.{label}: a bundle cannot name a preset; put preset in [base]")
        options[label] = MappingProxyType(settings)
    return Bundles(name, MappingProxyType(options))


def _param(name: str, value: Any, where: str) -> Param:
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return _bundles(name, value, where)
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_CHOICES:
            raise UserError(f"{where}: {name} needs between 1 and {MAX_CHOICES} choices")
        values = tuple(check_setting(name, v, where) for v in value)
        if len(set(values)) != len(values):
            raise UserError(f"{where}: {name} lists a choice twice")
        return Choice(name, values)
    if not isinstance(value, dict):
        raise UserError(f"{where}: {name} must be a list of choices or a range {{ low = .., high = .. }}")
    kind = setting_type(check_name(name, where))
    if kind not in (int, float):
        raise UserError(f"{where}: {name} is a {kind.__name__} setting; give it a list of choices")
    extra = set(value) - RANGE_KEYS
    if extra or not {"low", "high"} <= set(value):
        raise UserError(f"{where}: the range of {name} takes low, high and optionally log, step")
    low, high = (check_setting(name, value[k], where) for k in ("low", "high"))
    log, step = value.get("log", False), value.get("step")
    if not isinstance(log, bool) or not low < high or (log and (low <= 0 or step is not None)):
        raise UserError(f"{where}: the range of {name} needs low < high; log = true needs low > 0 and no step")
    if step is not None and (check_setting(name, step, where) <= 0):
        raise UserError(f"{where}: the step of {name} must be positive")
    return Range(name, kind, low, high, log, step)


def _check_values(space: SweepSpace, where: str) -> None:
    """The base, every choice and both ends of every range make a valid config; an arch is a registered model."""
    from mnistlab.models import list_models

    tried = [{}] + [{p.name: v} for p in space.params
                    for v in ((p.low, p.high) if isinstance(p, Range) else p.values)]
    for values in tried:
        what = ", ".join(f"{k} = {v!r:.40}" for k, v in values.items()) or "[base]"
        try:
            cfg = space.train_config(values)
        except UserError as exc:
            raise UserError(f"{where}: {what}: {exc}") from None
        if cfg.arch not in list_models():
            raise UserError(f"{where}: {what}: unknown model {cfg.arch!r:.40}; choose from: {', '.join(list_models())}")
