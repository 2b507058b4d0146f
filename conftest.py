"""What every test and docstring example shares: offline, a private cache, the data beside the checkout.

Test infrastructure, kept out of the package (``src/``): the product takes its data location only
from ``MNISTLAB_DATA_DIR`` or ``--data-dir``; the tests set that to ``../shared/data`` when it exists.

The ``>>>`` examples in mnistlab's docstrings are tests too: ``python -m pytest`` runs every one.
Each example runs offline, with a private cache, in a fresh empty folder, as a reader's would in
a new project. An example that names ``"runs/simple"`` finds a trained and evaluated run there
(``simple``, one epoch on 2,000 MNIST images: seconds, so a rough model); one that names
``"runs/simple-s1"`` also finds its twin trained with seed 1. Each is trained once per session,
only when an example needs it, then copied, so an example may change its copy.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"
PACKAGE = ROOT / "src" / "mnistlab"  # its modules are collected as doctest modules
RUNS = {"runs/simple": 0, "runs/simple-s1": 1}  # folder an example names → the seed it was trained with


def pytest_collect_file(file_path, parent):
    """Every module of the package is a doctest module, as with ``--doctest-modules``; that flag in
    addopts would also import tests/'s helper modules as doctest modules, before pytest can rewrite
    their asserts."""
    if file_path.suffix == ".py" and file_path.is_relative_to(PACKAGE) and file_path.name != "__main__.py" \
            and not parent.config.option.doctestmodules:  # given on the command line: pytest collects them
        return DoctestModule.from_parent(parent, path=file_path)
    return None


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """Every test and example runs offline, with a private cache, and finds the data in ../shared/data."""
    monkeypatch.setenv("MNISTLAB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    if SHARED_DATA.is_dir() and "MNISTLAB_DATA_DIR" not in os.environ:
        monkeypatch.setenv("MNISTLAB_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding mnist/ (MNISTLAB_DATA_DIR or ../shared/data); tests needing it skip without it."""
    path = Path(os.environ.get("MNISTLAB_DATA_DIR", SHARED_DATA))
    if not (path / "mnist").is_dir():
        pytest.skip(f"MNIST not found at {path}; run 'mnistlab data fetch' and set MNISTLAB_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def _doctest_runs(tmp_path_factory, data_dir):
    """``trained(name)``: the folder of run ``name`` of :data:`RUNS`, trained and evaluated on first use."""
    import mnistlab

    root = tmp_path_factory.mktemp("doctest-runs")
    done: dict[str, Path] = {}

    def trained(name: str) -> Path:
        if name not in done:
            # 20 steps of 100 unaugmented images: a second or two, and ~78% accuracy, enough for the
            # examples' pictures to be recognised (never asserted: another machine may round otherwise).
            run = mnistlab.train("simple", epochs=1, train_subset=2000, batch_size=100, augment=False,
                                 val_size=500, seed=RUNS[name], out=root / name, data_dir=str(data_dir),
                                 progress=False)
            run.evaluate(data_dir=str(data_dir))
            done[name] = run.path
        return done[name]

    return trained


@pytest.fixture(autouse=True)
def _doctest_folder(request, monkeypatch, tmp_path):
    """Doctests only: the working directory is a fresh folder holding the runs they name."""
    if not isinstance(request.node, DoctestItem):
        return
    monkeypatch.chdir(tmp_path)
    code = "".join(example.source for example in request.node.dtest.examples)
    for name in RUNS:
        if re.search(f'"{name}[/"]', code):  # the run itself, or a file in it
            shutil.copytree(request.getfixturevalue("_doctest_runs")(name), tmp_path / name)
