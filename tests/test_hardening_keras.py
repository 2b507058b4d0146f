"""Keras files from someone else never run code: safe_mode refuses Lambda layers and the switch that
would turn it off, with a one-line error."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from mnistlab import frameworks
from mnistlab.errors import UserError

needs_keras = pytest.mark.skipif(not frameworks.available("keras"), reason="needs mnistlab[keras]")


def _lambda_model(run: Path) -> None:
    """``run/model.keras`` holding a Lambda layer: stored as Python bytecode, run if loaded with safe_mode off."""
    from mnistlab.frameworks.keras.runtime import keras

    run.mkdir()
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x + 1.0)(inputs)).save(run / "model.keras")


@pytest.mark.keras
@needs_keras
def test_lambda_layer_in_model_keras_is_refused(tmp_path):
    from mnistlab.frameworks.keras.runtime import load_keras_model

    _lambda_model(tmp_path / "run")
    with pytest.raises(UserError, match="model.keras: refused") as err:
        load_keras_model(tmp_path / "run")
    assert "\n" not in str(err.value)


@pytest.mark.keras
@needs_keras
def test_a_model_file_naming_the_safe_mode_switch_is_refused(tmp_path):
    """A config naming ``keras.config.enable_unsafe_deserialization`` as a layer's function is refused.

    Keras before 3.11 resolved any public Keras function a .keras config names, the switch that turns
    safe_mode off included (CVE-2025-9906); that is why mnistlab[keras] asks for keras>=3.11. Measured
    with this file: keras 3.10.0 resolves and calls it (the load ends in a NotImplementedError from
    Lambda.call, not a refusal); keras 3.15.1 refuses the name, and load_keras_model says so in one line.
    """
    from mnistlab.frameworks.keras.runtime import load_keras_model

    run = _crafted_lambda(tmp_path, {"module": "keras.config", "class_name": "function",
                                     "config": "enable_unsafe_deserialization", "registered_name": "function"})
    with pytest.raises(UserError, match="model.keras: refused .*enable_unsafe_deserialization") as err:
        load_keras_model(run)
    assert "\n" not in str(err.value)
    _lambda_model(tmp_path / "next")  # safe mode is still on for the next file
    with pytest.raises(UserError, match="model.keras: refused"):
        load_keras_model(tmp_path / "next")


@pytest.mark.keras
@needs_keras
def test_a_model_file_naming_a_function_outside_keras_is_refused_in_one_line(tmp_path):
    """Keras refuses ``os.system`` as a layer's function with a TypeError; that too is one line, nothing runs."""
    from mnistlab.frameworks.keras.runtime import load_keras_model

    run = _crafted_lambda(tmp_path, {"module": "os", "class_name": "function", "config": "system",
                                     "registered_name": "function"})
    with pytest.raises(UserError, match="model.keras: refused") as err:
        load_keras_model(run)
    assert "\n" not in str(err.value)


def _crafted_lambda(tmp_path: Path, function: dict) -> Path:
    """``tmp_path/run/model.keras``: a saved Lambda model whose config names ``function`` instead."""
    from mnistlab.frameworks.keras.runtime import keras

    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(keras.ops.abs)(inputs)).save(tmp_path / "plain.keras")
    run = tmp_path / "run"
    run.mkdir()
    with zipfile.ZipFile(tmp_path / "plain.keras") as plain, zipfile.ZipFile(run / "model.keras", "w") as crafted:
        for item in plain.infolist():
            data = plain.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = next(x for x in config["config"]["layers"] if x["class_name"] == "Lambda")
                layer["config"]["function"] = function
                data = json.dumps(config).encode()
            crafted.writestr(item, data)
    return run
