"""The typed run config: one real config.json of each kind loads into a RunConfig and writes back
byte for byte, and a loaded RunConfig cannot be changed in place.

The fixtures under tests/fixtures/runs/ were written by tiny real runs of this version
(tests/fixtures/runs/regenerate.py); regenerate them after a deliberate change to config.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mnistlab import frameworks, runs
from mnistlab.config import TrainConfig
from mnistlab.data.datasets import get_dataset_info
from mnistlab.runconfig import DataFacts, Member, RecipeTrial, RunConfig, TransferFrom

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
# fixture folder → (kind, framework) its config.json records
KINDS = {"train-torch": ("train", "torch"), "train-keras": ("train", "keras"), "prune": ("prune", "torch"),
         "ensemble": ("ensemble", "ensemble"), "transfer": ("train", "torch")}


@pytest.fixture(params=list(KINDS))
def run_dir(request) -> Path:
    return FIXTURES / request.param


def test_every_kind_loads_typed_and_writes_back_the_same_json(run_dir, tmp_path):
    written = (run_dir / runs.CONFIG).read_text()
    config = runs.read_config(run_dir)
    assert isinstance(config, RunConfig) and (config.kind, config.framework) == KINDS[run_dir.name]
    assert config.to_dict() == json.loads(written)
    assert RunConfig.from_dict(config.to_dict(), run_dir) == config
    runs.write_config(tmp_path, config)  # the writer's own checks pass, and the file is the same to the byte
    assert (tmp_path / runs.CONFIG).read_text() == written


def test_each_kind_holds_its_typed_parts(run_dir):
    config = runs.read_config(run_dir)
    assert isinstance(config.data, DataFacts)
    assert config.data.class_names == get_dataset_info(config.dataset).class_names
    assert config.is_ensemble == (run_dir.name == "ensemble")
    if config.is_ensemble:
        assert config.train is None and config.seed is None and len(config.members) == 2
        assert all(isinstance(m, Member) and m.used for m in config.members)
        assert {m.framework for m in config.members} == {"torch", "keras"}
        return
    assert isinstance(config.train, TrainConfig) and config.seed == config.train.seed == 0
    frameworks.TABLE[config.framework].check_run(config, run_dir)  # the registry accepts what it wrote
    assert (config.pruned_from is not None) == (config.kind == "prune") == bool(config.pruning)
    assert (config.transfer_from is not None) == (run_dir.name == "transfer")
    if config.transfer_from is not None:
        assert isinstance(config.transfer_from, TransferFrom) and config.transfer_from.initialised == "body"
        trials = config.transfer_from.recipe_trials
        assert trials and all(isinstance(t, RecipeTrial) for t in trials)
        assert config.train.transfer["recipe"] in {t.recipe for t in trials}


def test_a_run_config_cannot_be_changed_in_place():
    config = runs.read_config(FIXTURES / "prune")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.arch = "resnet"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data.mean = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):  # the training settings too
        config.train.lr = 1.0
    with pytest.raises(TypeError):  # mappings are read-only views
        config.pruning["sparsity_target"] = 0.9
    with pytest.raises(TypeError):
        config.model_args["width"] = 64
    ensemble = runs.read_config(FIXTURES / "ensemble")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ensemble.members[0].weight = 1.0
    with pytest.raises(TypeError):
        ensemble.selection["method"] = "all"
    transfer = runs.read_config(FIXTURES / "transfer")
    with pytest.raises(dataclasses.FrozenInstanceError):
        transfer.transfer_from.recipe_trials[0].best_val_acc = 1.0
    changed = dataclasses.replace(config, arch="deeper")  # how one config is derived from another
    assert (changed.arch, config.arch) == ("deeper", "simple")


def key_paths(obj, prefix=()) -> set[tuple]:
    """Every nested key path of a config's objects (values and list items aside)."""
    if not isinstance(obj, dict):
        return set()
    return {(*prefix, k) for k in obj} | {p for k, v in obj.items() for p in key_paths(v, (*prefix, k))}


def test_the_torch_fixture_has_the_keys_training_writes_today(trained_run):
    """A field added to (or dropped from) what training writes shows here: regenerate the fixtures."""
    today, fixture = (json.loads((d / runs.CONFIG).read_text()) for d in (trained_run, FIXTURES / "train-torch"))
    for config in (today, fixture):
        config.pop("environment")  # the machine's facts: which keys appear depends on what is installed
    assert key_paths(today) == key_paths(fixture)


def test_what_a_run_can_do_is_known_without_its_framework_installed(monkeypatch):
    from mnistlab.errors import UserError
    from mnistlab.frameworks.registry import Framework

    config = runs.read_config(FIXTURES / "train-keras")
    monkeypatch.setattr(Framework, "available", lambda self: False)  # as on a machine without mnistlab[keras]
    assert "MC dropout" in frameworks.of_run(config, FIXTURES / "train-keras").why_not("mc_dropout")
    with pytest.raises(UserError, match="Keras is not installed"):  # loading the run needs it
        frameworks.for_run(config, FIXTURES / "train-keras")
