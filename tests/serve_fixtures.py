"""Session fixtures for the service tests: a client on a fake model (instant, for the bad-input
cases) and the session's trained `simple` run loaded once (for real digits). Loaded with
``pytest_plugins = ["serve_fixtures"]``."""

from __future__ import annotations

import pytest

from serve_helpers import make_client


@pytest.fixture
def client():
    return make_client()


@pytest.fixture(scope="session")
def test_digits(data_dir):
    from mnistlab.data.datasets import load_split

    x, y = load_split("mnist", "test", data_dir=str(data_dir))
    return x[:64].numpy(), y[:64].numpy()


@pytest.fixture(scope="session")
def real_holder(trained_run):
    from mnistlab.serve.model import ModelHolder

    return ModelHolder.load(trained_run, "torch")


@pytest.fixture(scope="session")
def real_client(real_holder):
    return make_client(real_holder)
