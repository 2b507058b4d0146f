"""The ``>>>`` examples in mnistlab's docstrings are tests: ``python -m pytest`` runs every one.

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

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
RUNS = {"runs/simple": 0, "runs/simple-s1": 1}  # folder an example names → the seed it was trained with


def pytest_collect_file(file_path, parent):
    """Every module here is a doctest module, as with ``--doctest-modules``; that flag in addopts would
    also import tests/'s helper modules as doctest modules, before pytest can rewrite their asserts."""
    if file_path.suffix == ".py" and file_path.name not in ("__main__.py", "conftest.py") \
            and not parent.config.option.doctestmodules:  # given on the command line: pytest collects them
        return DoctestModule.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session")
def _doctest_runs(tmp_path_factory):
    """``trained(name)``: the folder of run ``name`` of :data:`RUNS`, trained and evaluated on first use."""
    import mnistlab

    root = tmp_path_factory.mktemp("doctest-runs")
    done: dict[str, Path] = {}

    def trained(name: str) -> Path:
        if name not in done:
            data = Path(os.environ.get("MNISTLAB_DATA_DIR", SHARED_DATA))
            if not (data / "mnist").is_dir():
                pytest.skip(f"MNIST not found at {data}; run 'mnistlab data fetch' and set MNISTLAB_DATA_DIR")
            # 20 steps of 100 unaugmented images: a second or two, and ~78% accuracy, enough for the
            # examples' pictures to be recognised (never asserted: another machine may round otherwise).
            run = mnistlab.train("simple", epochs=1, train_subset=2000, batch_size=100, augment=False,
                                 val_size=500, seed=RUNS[name], out=root / name, data_dir=str(data),
                                 progress=False)
            run.evaluate(data_dir=str(data))
            done[name] = run.path
        return done[name]

    return trained


@pytest.fixture(autouse=True)
def _doctest_folder(request, monkeypatch, tmp_path):
    """Doctests only: offline, a private cache, the data in ../shared/data, cwd a fresh folder with the runs they name."""
    if not isinstance(request.node, DoctestItem):
        return
    monkeypatch.setenv("MNISTLAB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    if SHARED_DATA.is_dir() and "MNISTLAB_DATA_DIR" not in os.environ:
        monkeypatch.setenv("MNISTLAB_DATA_DIR", str(SHARED_DATA))
    monkeypatch.chdir(tmp_path)
    code = "".join(example.source for example in request.node.dtest.examples)
    for name in RUNS:
        if re.search(f'"{name}[/"]', code):  # the run itself, or a file in it
            shutil.copytree(request.getfixturevalue("_doctest_runs")(name), tmp_path / name)
