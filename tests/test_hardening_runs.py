"""--force deletes only a run this tool wrote, never a folder that merely holds a config.json."""

from __future__ import annotations

import json
import logging

import pytest

from mnistlab import cli, runs
from mnistlab.errors import UserError
from test_hardening_runconfig import CONFIG


def valid_run(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.CONFIG).write_text(json.dumps(CONFIG))
    (folder / runs.WEIGHTS).write_bytes(b"old weights")
    return folder


def test_force_on_a_non_run_folder_refuses_and_deletes_nothing(tmp_path, capsys):
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "config.json").write_text('{"name": "my web app", "port": 8080}')
    (project / "thesis.tex").write_text("years of work")
    code = cli.main(["train", "--arch", "simple", "--out", str(project), "--force", "--epochs", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--force deletes only a run directory" in err and "Traceback" not in err
    assert (project / "thesis.tex").read_text() == "years of work"


def test_force_replaces_a_valid_run_and_says_so(tmp_path, caplog):
    run = valid_run(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="mnistlab.runs"):
        assert runs.prepare_run_dir(run, force=True) == run
    assert list(run.iterdir()) == []
    assert f"removed the previous run {run}" in caplog.text


def test_rebuild_replaces_a_valid_run_silently_and_nothing_else(tmp_path, caplog):
    run = valid_run(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="mnistlab.runs"):
        assert runs.prepare_run_dir(run, rebuild=True) == run
    assert list(run.iterdir()) == [] and caplog.records == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text('{"name": "my web app"}')
    with pytest.raises(UserError, match="deletes only a run directory"):
        runs.prepare_run_dir(tmp_path / "mine", rebuild=True)
    assert (tmp_path / "mine" / "config.json").is_file()


def test_force_never_removes_the_current_folder_or_its_parents(tmp_path, monkeypatch):
    here = valid_run(tmp_path / "work")  # even a valid run, when it is where the user stands
    monkeypatch.chdir(here)
    for target in (".", str(here), str(tmp_path)):
        if target == str(tmp_path):
            valid_run(tmp_path)
        with pytest.raises(UserError, match="refusing to delete"):
            runs.prepare_run_dir(target, force=True)
    assert (here / runs.WEIGHTS).is_file()


def test_force_never_follows_a_symlink(tmp_path):
    real = valid_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UserError, match="symbolic link"):
        runs.prepare_run_dir(tmp_path / "link", force=True)
    assert (real / runs.WEIGHTS).is_file()


def test_without_force_nothing_changes(tmp_path):
    run = valid_run(tmp_path / "run")
    with pytest.raises(UserError, match="pass --force"):
        runs.prepare_run_dir(run)
    assert (run / runs.WEIGHTS).is_file()
