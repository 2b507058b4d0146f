"""Session fixtures for the deploy tests: private copies of ``trained_run`` (exports write into them).

A test module loads them with ``pytest_plugins = ["deploy_fixtures"]``: as a plugin they are built
once per session however many modules use them (a fixture *imported* into two modules is built twice).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def deploy_run(trained_run, tmp_path_factory) -> Path:
    """A copy of the session's trained `simple` run with nothing exported yet (never written to)."""
    out = tmp_path_factory.mktemp("deploy") / "simple"
    shutil.copytree(trained_run, out)
    return out


@pytest.fixture(scope="session")
def exported_run(deploy_run, tmp_path_factory, data_dir) -> Path:
    """A copy of the trained run with ``export/model.onnx`` and ``export/model.int8.onnx`` written."""
    from mnistlab import cli
    from mnistlab.export.quantize import export_int8

    out = tmp_path_factory.mktemp("exported") / "simple"
    shutil.copytree(deploy_run, out)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # through the CLI, so a test can check that stdout is pure JSON
        assert cli.main(["export", str(out), "--format", "onnx", "--json", "--data-dir", str(data_dir)]) == 0
    (out.parent / "export-stdout.txt").write_text(stdout.getvalue())
    export_int8(out, data_dir=str(data_dir), calibration_size=500, seconds=0.05)
    return out
