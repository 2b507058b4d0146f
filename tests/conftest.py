"""The tests' fixtures: trained runs, a browser, a kill after the first epoch (the offline setup and
``data_dir`` are the repository's conftest.py, shared with the docstring examples)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:  # CI replays the same generated examples on every run; locally each run explores new ones
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:
    pass


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A `simple` model trained for one epoch on 10,000 images (about 5 s), then evaluated."""
    from mnistlab.config import TrainConfig
    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.training.trainer import train

    os.environ.setdefault("MNISTLAB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("runs") / "simple"
    cfg = TrainConfig(arch="simple", epochs=1, train_subset=10_000, batch_size=32, lr=3e-3, seed=0)
    train(cfg, out, data_dir=str(data_dir), progress=False)
    evaluate_run(out, data_dir=str(data_dir))
    return out


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory, data_dir):
    """A `simple` model trained for one epoch on 4,000 Fashion-MNIST images, then evaluated: a weak
    model, but enough to tell whether a photo is classified like the original."""
    from mnistlab.config import TrainConfig
    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.training.trainer import train

    os.environ.setdefault("MNISTLAB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("runs") / "fashion"
    cfg = TrainConfig(arch="simple", dataset="fashion-mnist", epochs=1, train_subset=4_000, batch_size=32, seed=0)
    train(cfg, out, data_dir=str(data_dir), progress=False)
    evaluate_run(out, data_dir=str(data_dir))
    return out


@pytest.fixture(scope="session")
def keras_run(tmp_path_factory, data_dir):
    """The Keras twin of `trained_run`: `simple`, 1 epoch on 6,000 images, evaluated (needs the keras extra)."""
    pytest.importorskip("keras")
    from mnistlab.config import TrainConfig
    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.frameworks.keras.train import train

    out = tmp_path_factory.mktemp("keras") / "simple"
    cfg = TrainConfig(arch="simple", framework="keras", epochs=1, train_subset=6000, batch_size=32, lr=3e-3)
    train(cfg, out, data_dir=str(data_dir), progress=False)
    evaluate_run(out, data_dir=str(data_dir))
    return out


@pytest.fixture(scope="session")
def smoke_quickstart(tmp_path_factory, data_dir):
    """The main job on its smoke budget with `simple` and, where Keras is installed, `keras:simple` (and so
    their ensemble): its folder and its result. Read it, do not change it: several tests share it."""
    from mnistlab import frameworks
    from mnistlab.experiments.quickstart import quickstart

    models = ("simple", "keras:simple") if frameworks.available("keras") else ("simple",)
    out = tmp_path_factory.mktemp("quickstart") / "qs"
    return out, quickstart(out, smoke=True, data_dir=str(data_dir), progress=False, models=models)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium():
    """Debian's chromium driven by Playwright: a skip where it is missing, a failure under CI (.ci/run installs it)."""
    if not CHROMIUM.exists():
        message = "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def kill_after_first_epoch(monkeypatch):
    """``run(train, cfg, out)``: trains, then stops with KeyboardInterrupt right after epoch 1 is saved.

    That is what Ctrl-C or a kill after the first checkpoint leaves behind; ``--resume`` must go on from it.
    """
    from mnistlab.training.progress import EpochProgress

    def run(train, cfg, out) -> None:
        real_end = EpochProgress.end_epoch

        def killed_after_first_epoch(self, row, note=""):
            real_end(self, row, note)
            raise KeyboardInterrupt

        monkeypatch.setattr(EpochProgress, "end_epoch", killed_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, progress=False)
        monkeypatch.setattr(EpochProgress, "end_epoch", real_end)

    return run
