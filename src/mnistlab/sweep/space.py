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
``{low, high, log, step}`` (an int setting gets an int range). Every name is checked against
:class:`~mnistlab.config.TrainConfig` (a misspelt one gets a did-you-mean), every choice and both
ends of every range must make a valid config, and an arch must be a registered model.
"""

from __future__ import annotations

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
class SweepSpace:
    """Fixed settings (``preset`` underneath ``base``) and the searched ``params``; ``text`` is the TOML read."""

    base: Mapping[str, Any]
    params: tuple[Choice | Range, ...]
    preset: str = "default"
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", MappingProxyType(dict(self.base)))

    def train_config(self, values: Mapping[str, Any], **extra: Any) -> TrainConfig:
        """The settings of one trial: the preset, the base, the trial's ``values``, then ``extra``."""
        return preset(self.preset, **{**self.base, **values, **extra})

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
    both = set(base) & {p.name for p in params}
    if both:
        raise UserError(f"{where}: {min(both)} is both fixed in [base] and searched in [search]")
    space = SweepSpace(base=base, params=params, preset=name or "default", text=text)
    _check_values(space, where)
    return space


def _param(name: str, value: Any, where: str) -> Choice | Range:
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

    tried = [{}] + [{p.name: v} for p in space.params for v in (p.values if isinstance(p, Choice) else (p.low, p.high))]
    for values in tried:
        what = ", ".join(f"{k} = {v!r:.40}" for k, v in values.items()) or "[base]"
        try:
            cfg = space.train_config(values)
        except UserError as exc:
            raise UserError(f"{where}: {what}: {exc}") from None
        if cfg.arch not in list_models():
            raise UserError(f"{where}: {what}: unknown model {cfg.arch!r:.40}; choose from: {', '.join(list_models())}")
