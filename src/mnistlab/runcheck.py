"""Check a run's config.json before anything trusts it: a run directory may come from someone else.

    >>> from mnistlab.runcheck import validate_config
    >>> validate_config({"kind": "train"}, "runs/x")    # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    mnistlab.errors.UserError: runs/x/config.json: missing 'framework'; ...

:func:`validate_config` is called by :meth:`mnistlab.runconfig.RunConfig.from_dict`, so on every
load and before every write. It checks
types, ranges and known keys for each kind of run this tool writes (``train``, ``prune`` and
``ensemble``), that ``model_args`` fit the registered model's constructor and stay under
:data:`MAX_PARAMS` (counted on PyTorch's ``meta`` device: no memory is allocated), that
``model_file`` is one of the file names this tool writes (never a path) and it returns the config
with ``threads`` lowered to this machine's cores. Every problem is one :class:`UserError` line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from mnistlab.config import TrainConfig, legacy_value
from mnistlab.errors import UserError

MAX_PARAMS = 50_000_000  # 200 MB of float32 weights: 100× the largest model here, far below a machine's RAM
MAX_THREADS = 4096  # anything above is not a machine, it is a typo or an attack
MAX_TEXT = 1000  # characters in any string of the config
MAX_MEMBERS = 100  # runs in one ensemble
KINDS = ("train", "prune", "ensemble")
# Top-level keys of each kind; "world_size", "backend" and "device" are recorded by distributed
# and GPU training. Unknown keys are refused: a config this tool did not write is not trusted.
COMMON = {"schema_version", "kind", "framework", "dataset", "arch", "model_args", "params", "data", "environment",
          "created"}
KNOWN_KEYS = {
    "train": COMMON | {"train", "threads", "model_file", "world_size", "backend", "device", "budget", "transfer_from",
              "sweep"},
    "prune": COMMON | {"train", "threads", "model_file", "world_size", "backend", "device", "pruned_from",
                       "pruning"},
    "ensemble": COMMON | {"weighting", "members", "selection"},
}
REQUIRED = {
    "train": ("kind", "framework", "dataset", "arch", "data", "train"),
    "prune": ("kind", "framework", "dataset", "arch", "data", "train", "pruned_from", "pruning"),
    "ensemble": ("kind", "framework", "dataset", "data", "members"),
}
# data.<key>: (type, lowest, highest); the first group is needed to rebuild and feed a model.
DATA_KEYS = {
    "mean": (float, 0.0, 1.0), "std": (float, 1e-6, 1.0), "num_classes": (int, 2, 1000),
    "image_size": (int, 8, 256), "in_channels": (int, 1, 4), "val_size": (int, 1, 10**7),
    "split_seed": (int, 0, 2**63 - 1), "n_train": (int, 0, 10**8), "n_val": (int, 0, 10**8),
}
DATA_REQUIRED = {"train": ("mean", "std", "class_names", "num_classes", "image_size", "in_channels", "val_size",
                           "split_seed"),
                 "ensemble": ("class_names", "num_classes")}
DATA_REQUIRED["prune"] = DATA_REQUIRED["train"]
# Upper bounds TrainConfig does not state (it checks lower bounds, for the CLI).
TRAIN_CAPS = {"epochs": 100_000, "batch_size": 1 << 20, "val_size": 10**7, "train_subset": 10**8,
              "step_size": 100_000, "patience": 100_000, "seed": 2**31 - 1, "split_seed": 2**63 - 1,
              "threads": MAX_THREADS}


def fail(run_dir: str | Path, problem: str) -> UserError:
    """The one-line error for a bad config.json in ``run_dir`` (for checks made after this module's)."""
    return _fail(Path(run_dir) / "config.json", problem)


def _fail(path: Path, problem: str) -> UserError:
    # Keys and values come from the file: escape control characters so the message stays one line.
    problem = "".join(c if c.isprintable() else repr(c)[1:-1] for c in problem)
    return UserError(f"{path}: {problem}; restore the file or train the run again")


def _number(value: Any, kind: type, lo: float, hi: float, where: str, path: Path) -> None:
    """``value`` is a finite ``kind`` (an int passes for a float, a bool never) within [lo, hi]."""
    ok_type = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok_type:
        raise _fail(path, f"{where} must be {'a number' if kind is float else 'an integer'}, not {value!r:.40}")
    if not ((isinstance(value, int) or math.isfinite(value)) and lo <= value <= hi):  # huge ints: no float()
        raise _fail(path, f"{where} = {value!r:.40} is outside {lo}..{hi}")


def _text(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _fail(path, f"{where} must be a string of at most {MAX_TEXT} characters")
    return value


def _dict(value: Any, where: str, path: Path) -> dict:
    if not isinstance(value, dict):
        raise _fail(path, f"{where} must be an object, not {type(value).__name__}")
    return value


def _require(obj: dict, keys: tuple[str, ...], prefix: str, path: Path) -> None:
    for key in keys:
        if key not in obj:
            raise _fail(path, f"missing {prefix}{key!r}")


def _check_data(data: dict, kind: str, path: Path) -> None:
    _require(data, DATA_REQUIRED[kind], "data.", path)
    unknown = set(data) - set(DATA_KEYS) - {"class_names", "fingerprint"}
    if unknown:
        raise _fail(path, f"unknown key data.{sorted(unknown)[0]!r}")
    for key, (kind_, lo, hi) in DATA_KEYS.items():
        if key in data:
            _number(data[key], kind_, lo, hi, f"data.{key}", path)
    names = data["class_names"]
    if not isinstance(names, list) or len(names) != data["num_classes"]:
        raise _fail(path, f"data.class_names must be a list of data.num_classes ({data['num_classes']}) names")
    for i, name in enumerate(names):
        _text(name, f"data.class_names[{i}]", path)
    fingerprint = data.get("fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and re.fullmatch("[0-9a-f]{64}", fingerprint)):
        raise _fail(path, "data.fingerprint must be 64 hexadecimal digits (a SHA-256)")


def _annotation_types(annotation: str) -> tuple[type, ...] | None:
    """``"int | None"`` → (int, NoneType); None when the annotation is not a plain JSON type."""
    table = {"int": int, "float": (int, float), "bool": bool, "str": str, "None": type(None)}
    base = annotation.split("[", 1)[0].strip()
    if base.startswith("dict"):
        return (dict,)
    parts = [p.strip() for p in base.split("|")]
    if not all(p in table for p in parts):
        return None
    flat: list[type] = []
    for p in parts:
        flat += list(table[p]) if isinstance(table[p], tuple) else [table[p]]
    return tuple(flat)


def _check_train(train: dict, path: Path) -> None:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = set(train) - set(fields)
    if unknown:
        raise _fail(path, f"unknown key train.{sorted(unknown)[0]!r}")
    for name, value in train.items():
        value = legacy_value(name, value)  # amp = true/false of runs made before --amp auto
        types = _annotation_types(str(fields[name].type))
        bad_bool = isinstance(value, bool) and bool not in (types or ())
        if types is not None and (not isinstance(value, types) or bad_bool):
            raise _fail(path, f"train.{name} has the wrong type ({type(value).__name__})")
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(path, f"train.{name} must be finite")
        if name in TRAIN_CAPS and isinstance(value, int) and value > TRAIN_CAPS[name]:
            raise _fail(path, f"train.{name} = {value} is over {TRAIN_CAPS[name]}")
    try:
        TrainConfig.from_dict(train)
    except UserError as exc:  # TrainConfig names the CLI flag; here the file is at fault
        raise _fail(path, f"train settings: {exc}") from None


# transfer_from (a run started from another run's weights): key → whether it is required
TRANSFER_FROM_KEYS = {"run": True, "sha256": True, "dataset": True, "arch": True, "initialised": True,
                      "recipe_choice": False, "recipe_trials": False}
MAX_TRIALS = 20


def _check_transfer_from(value: Any, path: Path) -> None:
    """Where a transfer run's starting weights came from: the source run, its weights' SHA-256, the trials."""
    where = "transfer_from"
    value = _dict(value, where, path)
    unknown = set(value) - set(TRANSFER_FROM_KEYS)
    if unknown:
        raise _fail(path, f"unknown key {where}.{sorted(unknown)[0]!r}")
    _require(value, tuple(k for k, required in TRANSFER_FROM_KEYS.items() if required), f"{where}.", path)
    for key in ("run", "sha256", "dataset", "arch", "initialised", "recipe_choice"):
        if key in value:
            _text(value[key], f"{where}.{key}", path)
    digest = value["sha256"]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _fail(path, f"{where}.sha256 must be 64 lower-case hex digits")
    if value["initialised"] not in ("body", "random"):
        raise _fail(path, f"{where}.initialised must be 'body' or 'random'")
    trials = value.get("recipe_trials", [])
    if not isinstance(trials, list) or len(trials) > MAX_TRIALS:
        raise _fail(path, f"{where}.recipe_trials must be a list of at most {MAX_TRIALS} trials")
    for i, trial in enumerate(trials):
        trial = _dict(trial, f"{where}.recipe_trials[{i}]", path)
        if set(trial) != {"recipe", "best_val_acc", "best_val_loss", "best_epoch"}:
            raise _fail(path, f"{where}.recipe_trials[{i}] must hold recipe, best_val_acc, best_val_loss, best_epoch")
        _text(trial["recipe"], f"{where}.recipe_trials[{i}].recipe", path)
        _number(trial["best_val_acc"], float, 0.0, 1.0, f"{where}.recipe_trials[{i}].best_val_acc", path)
        _number(trial["best_val_loss"], float, 0.0, 1e6, f"{where}.recipe_trials[{i}].best_val_loss", path)
        _number(trial["best_epoch"], int, 0, 100_000, f"{where}.recipe_trials[{i}].best_epoch", path)


MAX_SWEEP_PARAMS = 100  # searched settings of one trial


def _check_sweep(value: Any, path: Path) -> None:
    """A sweep trial's record: the study's name, the trial's number, its settings (names and plain values)."""
    value = _dict(value, "sweep", path)
    if set(value) != {"study", "trial", "params"}:
        raise _fail(path, "sweep must hold study, trial and params")
    _text(value["study"], "sweep.study", path)
    _number(value["trial"], int, 0, 10**9, "sweep.trial", path)
    params = _dict(value["params"], "sweep.params", path)
    if len(params) > MAX_SWEEP_PARAMS:
        raise _fail(path, f"sweep.params holds more than {MAX_SWEEP_PARAMS} settings")
    for key, item in params.items():
        _text(key, "sweep.params key", path)
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise _fail(path, f"sweep.params.{key!r:.40} must be a string, a number, a boolean or null")
        if isinstance(item, str):
            _text(item, f"sweep.params.{key!r:.40}", path)


@functools.lru_cache(maxsize=64)
def _count_params(arch: str, dims_json: str, args_json: str) -> int:
    """Parameters of ``arch`` built on the meta device (shapes only, no memory); raises UserError."""
    import torch

    from mnistlab.models import create_model, list_models

    if arch not in list_models():
        raise UserError(f"unknown model {arch!r}; choose one of: {', '.join(list_models())}")
    try:
        with torch.device("meta"):
            model = create_model(arch, **json.loads(dims_json), **json.loads(args_json))
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError) as exc:
        raise UserError(f"model_args do not build {arch!r} ({str(exc).splitlines()[0][:100]})") from None
    return sum(p.numel() for p in model.parameters())


def _check_model(config: dict, path: Path) -> None:
    arch = _text(config["arch"], "arch", path)
    data = config["data"]
    for where, args in (("model_args", config.get("model_args", {})),
                        ("train.model_args", config["train"].get("model_args", {}))):
        _dict(args, where, path)
        for key, value in args.items():
            if key in ("in_channels", "num_classes", "image_size"):
                raise _fail(path, f"{where}.{key} belongs in data, not {where}")
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise _fail(path, f"{where}.{key} must be a number or a string")
            if isinstance(value, str):
                _text(value, f"{where}.{key}", path)
            else:
                _number(value, float, -1e6, 1e6, f"{where}.{key}", path)
    if "model_args" in config["train"] and config["train"]["model_args"] != config.get("model_args", {}):
        raise _fail(path, "model_args and train.model_args differ")
    dims = {k: data[k] for k in ("in_channels", "num_classes", "image_size")}
    try:
        params = _count_params(arch, json.dumps(dims, sort_keys=True),
                               json.dumps(config.get("model_args", {}), sort_keys=True))
    except UserError as exc:
        raise _fail(path, str(exc).split(";")[0]) from None
    if params > MAX_PARAMS:
        raise _fail(path, f"model_args give {params:,} parameters (limit {MAX_PARAMS:,})")


def _check_members(members: Any, path: Path) -> None:
    if not isinstance(members, list) or not 2 <= len(members) <= MAX_MEMBERS:
        raise _fail(path, f"members must be a list of 2 to {MAX_MEMBERS} runs")
    for i, member in enumerate(members):
        _check_flat(member, f"members[{i}]", path)
        _require(member, ("run_dir",), f"members[{i}].", path)
        # inference divides by the temperature and averages with the weights
        if member.get("weight") is not None:
            _number(member["weight"], float, 0, 1e6, f"members[{i}].weight", path)
        if member.get("temperature") is not None:
            _number(member["temperature"], float, 1e-3, 1e3, f"members[{i}].temperature", path)


def _check_flat(obj: Any, where: str, path: Path) -> None:
    """An object of short strings, numbers and nulls (an ensemble's selection settings)."""
    for key, value in _dict(obj, where, path).items():
        if isinstance(value, str):
            _text(value, f"{where}.{key}", path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _number(value, float, -1e12, 1e12, f"{where}.{key}", path)
        elif value is not None:
            raise _fail(path, f"{where}.{key} must be a string, a number or null")


def _check_budget(budget: dict, path: Path) -> None:
    """quickstart's plan (mnistlab.budget.Plan.record): numbers, and the epochs chosen per model."""
    for key, value in budget.items():
        if key == "epochs":
            for name, epochs in _dict(value, "budget.epochs", path).items():
                _text(name, "budget.epochs key", path)
                _number(epochs, int, 0, TRAIN_CAPS["epochs"], f"budget.epochs.{name}", path)
        elif key in ("budget_s", "planned_s", "measured_s", "train_per_s", "eval_per_s", "epoch_s"):
            _number(value, float, 0, 1e9, f"budget.{key}", path)
        else:
            raise _fail(path, f"unknown key budget.{key!r:.40}")


def validate_config(config: Any, run_dir: str | Path) -> dict[str, Any]:
    """Return ``config`` (``threads`` capped at this machine's cores) or raise a one-line UserError."""
    path = Path(run_dir) / "config.json"
    config = dict(_dict(config, "the config", path))
    kind = config.get("kind")
    if kind not in KINDS:
        raise _fail(path, f"kind {kind!r:.40} is not one of {', '.join(KINDS)}" if "kind" in config
                    else "missing 'kind'")
    _require(config, REQUIRED[kind], "", path)
    unknown = set(config) - KNOWN_KEYS[kind]
    if unknown:
        raise _fail(path, f"unknown key {sorted(unknown)[0]!r}")
    # Which frameworks exist, and the file each saves, is the framework registry's to say when the
    # run is used (mnistlab.frameworks.for_run); here only the shape of the names.
    framework = _text(config["framework"], "framework", path)
    if (framework == "ensemble") != (kind == "ensemble"):
        raise _fail(path, f"framework {framework!r:.40} does not fit a {kind} run")
    _text(config["dataset"], "dataset", path)
    _check_data(_dict(config["data"], "data", path), kind, path)
    if "model_file" in config:
        name = _text(config["model_file"], "model_file", path)
        if not name or Path(name).name != name or name.startswith("."):
            # a file of the run's own folder, never a path: no "../x", no absolute path
            raise _fail(path, f"model_file {name!r:.60} is not a file name")
    for key in ("created", "pruned_from", "weighting", "backend", "device"):
        if config.get(key) is not None:  # backend is null for a one-process run
            _text(config[key], key, path)
    for key in ("params", "world_size"):
        if key in config:
            _number(config[key], int, 0, 10**10, key, path)
    for key, value in _dict(config.get("environment", {}), "environment", path).items():
        if value is not None and not isinstance(value, (str, int, float)):
            raise _fail(path, f"environment.{key} must be a string, a number or null")
        if isinstance(value, str):
            _text(value, f"environment.{key}", path)
    _dict(config.get("pruning", {}), "pruning", path)
    _check_budget(_dict(config.get("budget", {}), "budget", path), path)
    if kind == "ensemble":
        _check_members(config["members"], path)
        _check_flat(config.get("selection", {}), "selection", path)
        _dict(config.get("model_args", {}), "model_args", path)
        return config
    _check_train(_dict(config["train"], "train", path), path)
    _check_model(config, path)
    if "transfer_from" in config:
        _check_transfer_from(config["transfer_from"], path)
    if "sweep" in config:
        _check_sweep(config["sweep"], path)
    if "threads" in config:
        _number(config["threads"], int, 1, MAX_THREADS, "threads", path)
        # A run trained on a bigger machine stays loadable; what it asks for never exceeds this one.
        config["threads"] = min(config["threads"], os.cpu_count() or 1)
    return config
