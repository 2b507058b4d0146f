"""Sweeps run for real: worker processes sharing a journal file, an interrupted sweep continued by the same
command, a pruned trial's run, a test split that is never opened, and two workers on a private PostgreSQL
server, one of them killed (see sweep_postgres.py for the server)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="needs mnistlab[sweep]")

from mnistlab import runs  # noqa: E402

pytest_plugins = ["sweep_postgres"]  # the postgres_url fixture: a private PostgreSQL server

pytestmark = pytest.mark.slow

# Four grid points, 2 epochs each on 200 images: a trial takes a few seconds. lr 1e-5 learns nothing in
# its first epoch, so the median pruner (after two finished trials) stops it there. One thread per
# trial: the same trial gives the same number whatever the number of workers.
SPACE = """
[base]
arch = "simple"
epochs = 2
train_subset = 200
val_size = 200
batch_size = 50
augment = false
threads = 1
[search]
lr = [0.003, 0.01, 0.00001, 0.002]
"""


def sweep(space: Path, out: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mnistlab", "sweep", str(space), "--sampler", "grid",
                             "--out", str(out), "--quiet", "--json", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def trials_of(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["trials"]


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "grid.toml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def journal_sweep(space_file, tmp_path_factory) -> Path:
    """The grid on two local workers sharing a journal file."""
    out = tmp_path_factory.mktemp("sweeps") / "journal"
    code, stdout, stderr = finish(sweep(space_file, out, "--workers", "2", "--pruner", "none", "--storage",
                                        f"journal:{out.parent / 'study.journal'}"))
    assert code == 0, stderr
    return out


def test_two_workers_on_a_journal_file_run_every_point_once(journal_sweep):
    trials = trials_of(journal_sweep)
    assert [t["state"] for t in trials] == ["complete"] * 4
    assert sorted(t["params"]["lr"] for t in trials) == sorted([0.003, 0.01, 0.00001, 0.002])
    assert len({t["run_dir"] for t in trials}) == 4
    workers = set()
    for t in trials:
        config = runs.read_config(t["run_dir"])
        assert config.sweep.trial == t["number"] and dict(config.sweep.params) == t["params"]
        assert config.train.lr == t["params"]["lr"] and config.train.train_subset == 200
        assert json.loads((Path(t["run_dir"]) / runs.TRAINING).read_text())["best_val_acc"] == t["value"]
        workers.add(optuna.load_study(study_name="grid", storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_sweep.parent / "study.journal")))
        ).trials[t["number"]].user_attrs["worker"])
    assert len(workers) == 2  # both workers ran trials
    assert (journal_sweep / "summary.md").is_file() and (journal_sweep / "summary.csv").is_file()
    assert {"optimization_history.png", "parallel_coordinate.png"} <= {p.name for p in journal_sweep.glob("*.png")}


def test_an_interrupted_sweep_continues_with_the_same_command(space_file, journal_sweep, tmp_path):
    """SIGTERM while trial 3 runs; the same command finishes the grid without running a finished trial
    again, and every trial scores what the journal sweep's trial of the same point scored."""
    out = tmp_path / "sweep"
    proc = sweep(space_file, out)
    deadline = time.monotonic() + 240
    while not (out / "trials" / "trial-0003" / runs.CONFIG).is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code, _, stderr = finish(proc)
    assert code == 128 + signal.SIGTERM and "resume with: mnistlab sweep" in stderr
    first = {t["number"]: t for t in trials_of(out)}
    assert [first[n]["state"] for n in range(4)] == ["complete", "complete", "pruned", "failed"]
    stamp = (out / "trials" / "trial-0000" / runs.TRAINING).stat().st_mtime_ns

    code, stdout, stderr = finish(sweep(space_file, out))
    assert code == 0, stderr
    trials = json.loads(stdout)["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete", "pruned", "failed", "complete"]
    assert trials[4]["params"] == first[3]["params"]  # the interrupted point, run again
    assert (out / "trials" / "trial-0000" / runs.TRAINING).stat().st_mtime_ns == stamp
    pruned = json.loads((out / "trials" / "trial-0002" / runs.TRAINING).read_text())
    assert pruned["stop_reason"] == "pruned" and pruned["epochs_run"] == 1
    assert len(runs.read_history(out / "trials" / "trial-0002")) == 1
    before = {t["params"]["lr"]: t["value"] for t in trials_of(journal_sweep)}
    for t in trials:
        if t["state"] == "complete":
            assert t["value"] == before[t["params"]["lr"]]


def test_the_objective_never_reads_the_test_split(space_file, journal_sweep, tmp_path, monkeypatch):
    """A worker run in this process, where the test split has random labels (and every split asked for
    is recorded): the same study as the journal sweep's."""
    import torch

    from mnistlab.data import datasets
    from mnistlab.sweep.runner import prepare
    from mnistlab.sweep.space import read_space
    from mnistlab.sweep.study import SweepSettings
    from mnistlab.sweep.summary import write_results
    from mnistlab.sweep.worker import run_worker, space_job

    real, asked = datasets.load_split, []

    def garbage_test_labels(dataset, split, *args, **kw):
        asked.append(split)
        x, y = real(dataset, split, *args, **kw)
        if split == "test":
            y = torch.randint(0, 10, y.shape, generator=torch.Generator().manual_seed(1))
        return x, y

    monkeypatch.setattr(datasets, "load_split", garbage_test_labels)
    settings = SweepSettings(out=str(tmp_path / "sweep"), study="grid", sampler="grid", pruner="none", quiet=True,
                             storage=f"journal:{tmp_path / 'study.journal'}")
    space, threads = read_space(space_file), torch.get_num_threads()
    try:
        prepare(space, settings, join=False)
        run_worker(settings, space_job(settings), 0)
    finally:
        torch.set_num_threads(threads)  # the trials set one thread: the next tests get this process's own
    values = {t.params["lr"]: t.value for t in write_results(settings).trials}
    assert values == {t["params"]["lr"]: t["value"] for t in trials_of(journal_sweep)}
    assert set(asked) == {"train"}


# Three points of three epochs: long enough to kill a worker in the middle of a trial.
LONGER = SPACE.replace("epochs = 2", "epochs = 3").replace("[0.003, 0.01, 0.00001, 0.002]", "[0.003, 0.01, 0.002]")


def test_two_machines_share_a_postgres_study_and_rerun_a_killed_workers_trial(postgres_url, tmp_path):
    """Two sweep commands on one PostgreSQL study (the second with --join, as on another machine); a
    worker killed with SIGKILL leaves its trial running, the other worker's heartbeat check marks it
    failed and runs it again; every grid point ends complete exactly once; the server's password is
    in no file of either sweep."""
    space = tmp_path / "grid.toml"
    space.write_text(LONGER)
    storage = ["--storage", postgres_url, "--heartbeat", "2", "--pruner", "none"]
    first = sweep(space, tmp_path / "a", *storage)
    deadline = time.monotonic() + 240
    while not (tmp_path / "a" / "sweep.json").is_file():  # the study exists: the second may join
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1]
        time.sleep(0.1)
    second = sweep(space, tmp_path / "b", "--join", "--study", "grid", *storage)
    try:
        study = optuna.load_study(study_name="grid", storage=postgres_url)
        while not (running := [t for t in study.get_trials()
                               if t.state.name == "RUNNING" and "worker" in t.user_attrs]):
            assert time.monotonic() < deadline and (first.poll() is None or second.poll() is None)
            time.sleep(0.1)
        victim = running[0]
        os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        codes = sorted([finish(first)[0], finish(second)[0]])
    finally:  # a failed check leaves no sweep running against a server about to stop
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
    assert codes == [0, 1]  # the driver whose worker died says the sweep failed there; the other finishes it
    trials = study.get_trials()
    assert trials[victim.number].state.name == "FAIL"
    retried = [t for t in trials if victim.number in t.system_attrs.get("retry_history", [])]
    assert [t.state.name for t in retried] == ["COMPLETE"] and retried[0].params == victim.params
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lr"] for t in complete) == [0.002, 0.003, 0.01]
    assert len({t.user_attrs["run_dir"] for t in complete}) == 3
    # The workers reached the server with the URL's password, and it was written nowhere.
    password = postgres_url.split(":")[2].split("@")[0].encode()
    written = json.loads((tmp_path / "a" / "sweep.json").read_text())["storage"]
    assert written.startswith("postgresql+psycopg2://sweep:***@")
    assert [f for f in tmp_path.rglob("*") if f.is_file() and password in f.read_bytes()] == []


def test_train_and_sweep_track_their_runs_in_mlflow(journal_sweep, tmp_path, data_dir):
    """`train --track mlflow` and a sweep's trials, read back with MLflow's own client from the SQLite store."""
    pytest.importorskip("mlflow", reason="needs mnistlab[track]")
    from mlflow.tracking import MlflowClient

    from mnistlab import cli
    from mnistlab.sweep.runner import track_trials
    from mnistlab.sweep.study import SweepSettings, open_storage
    from mnistlab.sweep.summary import collect

    out = tmp_path / "runs" / "simple"
    assert cli.main(["train", "--arch", "simple", "--epochs", "2", "--train-subset", "200", "--val-size", "100",
                     "--batch-size", "50", "--out", str(out), "--quiet", "--track", "mlflow"]) == 0
    store = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"  # --track mlflow's default: beside the run
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("mnistlab").experiment_id])
    assert run.data.params["lr"] == "0.003" and run.data.params["train_subset"] == "200"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]
    assert json.loads((out / runs.TRAINING).read_text())["best_val_acc"] == run.data.metrics["best_val_acc"]
    assert {"config.json", "history.csv", "training.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    model = importlib.util.find_spec("pandas") is not None  # else logged without it (test_tracking_model.py)
    assert run.data.tags["mnistlab.model"].startswith("models:/m-") if model else run.data.tags["mnistlab.model"] == "none"

    # the same store: creating one (MLflow's migrations) is most of this test's time
    settings = SweepSettings(out=str(journal_sweep), study="grid", sampler="grid", track=store,
                             storage=f"journal:{journal_sweep.parent / 'study.journal'}")
    result = collect(optuna.load_study(study_name="grid", storage=open_storage(settings)), settings)
    for _ in range(2):  # the second time finds every trial logged already
        track_trials(result, settings)
    client = MlflowClient(settings.track)
    logged = client.search_runs([client.get_experiment_by_name("grid").experiment_id])
    assert sorted(r.data.tags["optuna.trial"] for r in logged) == ["0", "1", "2", "3"]
    assert {float(r.data.params["lr"]) for r in logged} == {0.003, 0.01, 0.00001, 0.002}
    with_model = {r.data.tags["optuna.trial"] for r in logged if "models:/" in r.data.tags.get("mnistlab.model", "")}
    assert with_model == ({str(result.best.number)} if model else set())  # the best trial's model only
