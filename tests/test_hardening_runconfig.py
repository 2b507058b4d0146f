"""config.json from someone else: loading a run ends in a result or a one-line UserError, never a traceback."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistlab import frameworks, runs
from mnistlab.errors import UserError
from mnistlab.frameworks.pytorch import load_model
from mnistlab.models import create_model
from mnistlab.runcheck import MAX_PARAMS, validate_config

DATA = {"mean": 0.1307, "std": 0.3081, "class_names": [str(d) for d in range(10)], "num_classes": 10,
        "image_size": 28, "in_channels": 1, "val_size": 5000, "split_seed": 0, "n_train": 55000, "n_val": 5000}
TRAIN = {"arch": "simple", "dataset": "mnist", "framework": "torch", "epochs": 1, "batch_size": 128, "lr": 0.003,
         "optimizer": "adam", "weight_decay": 0.0001, "scheduler": "onecycle", "step_size": 7, "gamma": 0.1,
         "patience": 3, "monitor": "val_loss", "seed": 0, "augment": True, "degrees": 10.0, "translate": 0.1,
         "scale": 0.1, "val_size": 5000, "split_seed": 0, "train_subset": None, "threads": None,
         "channels_last": True, "amp": False, "model_args": {}}
# What training writes (training/trainer.py: run_config), kept literal so the test notices schema drift.
CONFIG = {"schema_version": 1, "kind": "train", "framework": "torch", "dataset": "mnist", "arch": "simple",
          "model_args": {}, "params": 93322, "data": DATA, "train": TRAIN, "threads": 2,
          "environment": {"mnistlab": "0.1.0", "python": "3.11.7", "cpu_count": 2, "cuda": None},
          "created": "2026-11-26T10:00:00+00:00"}
ENSEMBLE = {"schema_version": 1, "kind": "ensemble", "framework": "ensemble", "dataset": "mnist", "arch": "ensemble",
            "model_args": {}, "params": 186644, "data": DATA, "weighting": "uniform",
            "members": [{"run_dir": "runs/a", "arch": "simple", "framework": "torch", "weight": 0.5,
                         "val_accuracy": 0.98, "test_accuracy": 0.98, "params": 93322, "model_bytes": 375000},
                        {"run_dir": "runs/b", "arch": "simple", "framework": "keras", "weight": 0.5,
                         "val_accuracy": None, "test_accuracy": 0.98, "params": 93322, "model_bytes": None}],
            "environment": {}, "created": "2026-11-26T10:00:00+00:00"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    runs.save_weights(folder, create_model("simple"))
    return folder / runs.WEIGHTS


def write_run(folder: Path, config, weights: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.CONFIG).write_text(json.dumps(config))
    if weights is not None:
        (folder / runs.WEIGHTS).write_bytes(weights.read_bytes())
    return folder


def test_valid_configs_load(tmp_path, weights):
    model, config = load_model(write_run(tmp_path / "t", CONFIG, weights))
    assert config.arch == "simple" and sum(p.numel() for p in model.parameters()) == 93322
    assert runs.read_config(write_run(tmp_path / "e", ENSEMBLE)).kind == "ensemble"
    keras = {**CONFIG, "framework": "keras", "model_file": "model.keras"}
    config = runs.read_config(write_run(tmp_path / "k", keras))
    assert config.model_file == "model.keras"
    frameworks.TABLE["keras"].check_run(config, tmp_path / "k")  # the file Keras saves: accepted when used


def mutate(config: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(config)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    (("arch",), DELETE, "missing 'arch'"),
    (("data", "mean"), DELETE, "missing data.'mean'"),
    (("train",), DELETE, "missing 'train'"),
    (("kind",), "evil", "kind 'evil'"),
    (("model_file",), "../../../etc/passwd", "model_file"),
    (("model_file",), "/tmp/x.safetensors", "model_file"),
    (("threads",), 10**9, "threads"),
    (("threads",), "2", "threads must be an integer"),
    (("model_args",), {"width": 4000}, "parameters"),
    (("model_args",), {"evil": 1}, "do not build"),
    (("model_args",), {"num_classes": 3}, "belongs in data"),
    (("data", "std"), 0, "data.std"),
    (("data", "mean"), float("nan"), "data.mean"),
    (("data", "class_names"), ["a"], "class_names"),
    (("train", "epochs"), "ten", "train.epochs"),
    (("train", "lr"), -1.0, "train settings"),
    (("train", "evil"), 1, "unknown key train.'evil'"),
    (("rm_rf",), True, "unknown key 'rm_rf'"),
    (("arch",), "nope", "unknown model"),
])
def test_bad_configs_are_one_line_errors(tmp_path, path, value, message):
    config = mutate(CONFIG, path, value)
    if path == ("model_args",):  # training writes them twice, top level and under train
        config = mutate(config, ("train", "model_args"), value)
    run = write_run(tmp_path / "run", config)
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as err:
        runs.read_config(run)
    assert "\n" not in str(err.value) and str(run) in str(err.value)


KERAS_PRUNE = {**CONFIG, "kind": "prune", "framework": "keras", "pruned_from": "runs/a", "pruning": {"amount": 0.5}}


# Which frameworks exist and which file each saves is the framework registry's to say: such a
# config reads, and is refused, in one line, as soon as a command uses the run.
@pytest.mark.parametrize("config, message", [
    (mutate(CONFIG, ("model_file",), "model.keras"), "model_file 'model.keras' is not 'model.safetensors'"),
    (mutate(CONFIG, ("framework",), "evil"), "framework 'evil' is not one of torch, keras"),
    ({**CONFIG, "framework": "keras", "model_file": "model.safetensors"}, "is not 'model.keras'"),
    (KERAS_PRUNE, "a prune run of framework 'keras', which does not prune"),
])
def test_configs_a_framework_cannot_use_are_one_line_errors_when_used(tmp_path, weights, config, message):
    run = write_run(tmp_path / "run", config, weights)
    loaded = runs.read_config(run)
    for use in (lambda: frameworks.for_run(loaded, run), lambda: load_model(run)):
        with pytest.raises(UserError) as err:
            use()
        assert "\n" not in str(err.value) and str(run) in str(err.value)
    with pytest.raises(UserError, match=message):
        frameworks.for_run(loaded, run)


def test_threads_are_capped_at_this_machines_cores(tmp_path):
    config = runs.read_config(write_run(tmp_path / "run", {**CONFIG, "threads": 4000}))
    assert config.threads == os.cpu_count()


def test_parameter_cap_is_counted_without_allocating():
    # width 2000 is ~290M parameters (1.2 GB): refused after a meta-device build, in milliseconds.
    with pytest.raises(UserError, match=f"limit {MAX_PARAMS:,}"):
        config = mutate(CONFIG, ("model_args",), {"width": 2000})
        validate_config(mutate(config, ("train", "model_args"), {"width": 2000}), "x")


def test_oversized_and_non_object_configs(tmp_path):
    big = write_run(tmp_path / "big", CONFIG)
    (big / runs.CONFIG).write_text(" " * (runs.MAX_CONFIG_BYTES + 1) + "{}")
    with pytest.raises(UserError, match="limit"):
        runs.read_config(big)
    for text in ("[1, 2]", "[" * 100_000, '"x"'):
        (big / runs.CONFIG).write_text(text)
        with pytest.raises(UserError):
            runs.read_config(big)


def paths_of(obj, prefix=()):
    """Every (nested) key path of a JSON object, for the fuzzer to pick from."""
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += paths_of(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += paths_of(v, (*prefix, i))
    return found


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["../../etc/passwd", "/", "model.keras", "keras", "ensemble", "prune", "resnet", "deeper"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), base=st.sampled_from([CONFIG, ENSEMBLE]))
def test_fuzzed_config_loads_or_says_why_in_one_line(tmp_path_factory, weights, data, base):
    config = base
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = paths_of(config)
        path = data.draw(st.sampled_from(candidates)) if candidates else ()
        if not path:
            break
        value = data.draw(st.one_of(st.just(DELETE), JSON))
        if value is DELETE and not isinstance(path[-1], str):
            value = None
        config = mutate(config, path, value)
    if data.draw(st.booleans()):  # sometimes a new top-level key
        config = {**config, data.draw(st.text(max_size=8)): data.draw(JSON)}
    run = write_run(tmp_path_factory.mktemp("fuzz"), config, weights)
    try:
        loaded = runs.read_config(run)
        if not loaded.is_ensemble:
            frameworks.for_run(loaded, run)
            load_model(run)
    except UserError as exc:
        assert "\n" not in str(exc)
