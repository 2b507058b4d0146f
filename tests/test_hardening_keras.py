"""Keras files from someone else never run code: safe_mode refuses Lambda layers, with a one-line error."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from mnistlab import frameworks
from mnistlab.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_keras_extra_pins_a_version_without_safe_mode_bypasses():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["keras"]
    pin = next(r for r in extra if r.startswith("keras"))
    major, minor = map(int, re.fullmatch(r"keras>=(\d+)\.(\d+)", pin).groups())
    assert (major, minor) >= (3, 11)


@pytest.mark.keras
@pytest.mark.skipif(not frameworks.available("keras"), reason="needs mnistlab[keras]")
def test_lambda_layer_in_model_keras_is_refused(tmp_path):
    from mnistlab.frameworks.keras.runtime import keras, load_keras_model

    inputs = keras.Input((2,))
    # A Lambda layer is stored as Python bytecode: loading it with safe_mode off would run it.
    outputs = keras.layers.Lambda(lambda x: x + 1.0)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    with pytest.raises(UserError, match="model.keras: refused") as err:
        load_keras_model(tmp_path)
    assert "\n" not in str(err.value)
