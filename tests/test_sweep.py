"""Sweeps: the search space, the loop's stop hook (a pruned run's directory), preset files, the trial record.

The sweeps themselves (worker processes, storages, resumption, PostgreSQL) are in test_sweep_runs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistlab import cli, runs
from mnistlab.commands.train import train_config_from_args
from mnistlab.config import TrainConfig, read_preset_file
from mnistlab.errors import UserError
from mnistlab.runconfig import RunConfig, SweepTrial
from mnistlab.sweep.preset import preset_text
from mnistlab.sweep.space import Choice, Range, parse_space
from mnistlab.training.checkpoint import load_checkpoint
from mnistlab.training.trainer import train

SPACE = """
[base]
arch = "simple"
epochs = 2
[search]
lr = { low = 1e-3, high = 1e-2, log = true }
batch_size = [64, 128]
degrees = { low = 0, high = 20, step = 10 }
"""


def test_a_space_is_typed_and_builds_each_trials_config():
    space = parse_space(SPACE, "s.toml")
    lr, batch, degrees = space.params
    assert lr == Range("lr", float, 1e-3, 1e-2, log=True) and batch == Choice("batch_size", (64, 128))
    assert degrees.kind is float and degrees.grid() == (0.0, 10.0, 20.0)
    cfg = space.train_config({"lr": 0.004, "batch_size": 64, "degrees": 10.0})
    assert (cfg.arch, cfg.epochs, cfg.lr, cfg.batch_size, cfg.degrees) == ("simple", 2, 0.004, 64, 10.0)


def test_bundles_are_named_recipes_that_go_over_the_base():
    space = parse_space('[base]\narch = "simple"\nlr = 0.003\n[search]\nseed = [0, 1]\n'
                        '[search.recipe]\nplain = {}\nmirror = { hflip = 0.5, degrees = 0 }\nslow = { lr = 0.001 }\n',
                        "r.toml")
    assert [p.name for p in space.params] == ["seed", "recipe"] and space.params[1].values == ("plain", "mirror", "slow")
    assert len(space.grid()) == 6 and {"seed": 1, "recipe": "mirror"} in space.grid()
    mirror = space.train_config({"seed": 1, "recipe": "mirror"})
    assert (mirror.hflip, mirror.degrees, mirror.lr, mirror.seed) == (0.5, 0.0, 0.003, 1)
    assert space.train_config({"seed": 0, "recipe": "slow"}).lr == 0.001  # a bundle overrides the base
    plain = space.train_config({"seed": 0, "recipe": "plain"})
    assert (plain.hflip, plain.lr) == (TrainConfig().hflip, 0.003)
    text = preset_text(space, {"seed": 1, "recipe": "mirror"}, "trial 3")  # the bundle's settings, not its name
    assert "recipe" not in text and 'hflip = 0.5' in text and "seed = 1" in text


def test_a_grid_needs_steps_and_lists_every_combination():
    space = parse_space('[search]\nbatch_size = [32, 64]\nepochs = { low = 1, high = 3 }\n', "g.toml")
    assert space.grid() == [{"batch_size": b, "epochs": e} for b in (32, 64) for e in (1, 2, 3)]
    with pytest.raises(UserError, match="continuous range"):
        parse_space(SPACE, "s.toml").grid()


@pytest.mark.parametrize("text, message", [
    ('[search]\nlrr = [0.1]\n', "unknown setting 'lrr'; did you mean 'lr'"),
    ('[base]\nbatch_sise = 3\n[search]\nlr = [0.1]\n', "did you mean 'batch_size'"),
    ('[search]\nbatch_size = [64, "x"]\n', "batch_size must be int"),
    ('[search]\nepochs = { low = 1.5, high = 3 }\n', "epochs must be int"),
    ('[search]\nlr = { low = 0.1, high = 0.01 }\n', "needs low < high"),
    ('[search]\nlr = { low = 0, high = 0.1, log = true }\n', "log = true needs low > 0"),
    ('[search]\nlr = { low = 0.1, high = 0.2, spread = 3 }\n', "takes low, high"),
    ('[search]\naugment = { low = 0, high = 1 }\n', "give it a list of choices"),
    ('[search]\nlr = [0.1, 0.1]\n', "lists a choice twice"),
    ('[search]\nlr = [-0.1]\n', "--lr must be positive"),
    ('[search]\narch = ["simple", "nope"]\n', "unknown model 'nope'"),
    ('[base]\nlr = 0.1\n[search]\nlr = [0.1]\n', "both fixed in [base] and searched"),
    ('[base]\narch = "simple"\n', "needs a [search] table"),
    ('[search]\nlr = [0.1]\n[extra]\nx = 1\n', "unknown table [extra]"),
    ('[search\n', "not valid TOML"),
    ('[search.lr]\nslow = { lr = 0.001 }\n', "lr is a setting"),
    ('[search.recipe]\nflip = { hflipp = 0.5 }\n', "did you mean 'hflip'"),
    ('[search.recipe]\nflip = { lr = -1.0 }\n', "--lr must be positive"),
    ('[search.recipe]\nbig = { preset = "best" }\n', "cannot name a preset"),
    ('[search]\nlr = [0.1]\n[search.recipe]\nslow = { lr = 0.001 }\n', "lr is set by both lr and recipe"),
])
def test_a_wrong_space_is_one_line_naming_the_fix(text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")) as err:
        parse_space(text, "bad.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("bad.toml")


def test_a_preset_file_is_checked_and_train_reads_it(tmp_path):
    good = tmp_path / "best.toml"
    good.write_text('# from a sweep\npreset = "seed"\narch = "simple"\nlr = 0.002\nepochs = 4\n')
    assert read_preset_file(good) == ("seed", {"arch": "simple", "lr": 0.002, "epochs": 4})
    for text, message in [('lrr = 1\n', "did you mean 'lr'"), ('preset = "fast"\n', "unknown preset"),
                          ('epochs = "4"\n', "epochs must be int"), ('x = [\n', "not a TOML preset file")]:
        (tmp_path / "bad.toml").write_text(text)
        with pytest.raises(UserError, match=message):
            read_preset_file(tmp_path / "bad.toml")
    args = cli.build_parser().parse_args(["train", "--preset-file", str(good), "--epochs", "2"])
    cfg = train_config_from_args(args)  # the file's preset and settings, a flag on top of them
    assert (cfg.arch, cfg.scheduler, cfg.lr, cfg.epochs) == ("simple", "step", 0.002, 2)
    args = cli.build_parser().parse_args(["train", "--preset-file", str(good), "--preset", "best"])
    assert train_config_from_args(args).scheduler == "onecycle"  # --preset given wins over the file's


def test_a_stop_hook_ends_a_run_cleanly_as_pruned(tmp_path, data_dir):
    """The loop asks stop_when after each epoch; "pruned" ends the run there with every file complete."""
    out, asked = tmp_path / "run", []

    def prune_after_first(row):
        asked.append(int(row["epoch"]))
        return "pruned" if row["epoch"] == 1 else None

    # The stop takes the loop's ordinary way out (as early stopping does), past board.close(); TensorBoard
    # itself is left out here: importing it imports TensorFlow (seconds), test_loop covers it.
    cfg = TrainConfig(arch="simple", epochs=3, train_subset=200, val_size=100, batch_size=50)
    summary = train(cfg, out, progress=False, stop_when=prune_after_first,
                    config_extra={"sweep": SweepTrial(study="s", trial=3, params={"lr": 0.003})})
    assert asked == [1] and summary["stop_reason"] == "pruned" and summary["epochs_run"] == 1
    assert json.loads((out / runs.TRAINING).read_text())["stop_reason"] == "pruned"
    assert len(runs.read_history(out)) == 1 and (out / runs.CHECKPOINT).is_file()
    assert load_checkpoint(out / runs.CHECKPOINT)["done"] is True  # not resumable as if interrupted
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    config = runs.read_config(out)
    assert config.sweep == SweepTrial(study="s", trial=3, params={"lr": 0.003})
    with pytest.raises(UserError, match="already finished"):
        train(None, out, resume=True, progress=False)


def test_a_sweep_trial_record_is_validated(tmp_path):
    raw = json.loads((Path(__file__).parent / "fixtures" / "runs" / "train-torch" / runs.CONFIG).read_text())
    raw["sweep"] = {"study": "s", "trial": 2, "params": {"lr": 0.01, "optimizer": "adamw"}}
    assert RunConfig.from_dict(raw, tmp_path).sweep.params["optimizer"] == "adamw"
    assert RunConfig.from_dict(RunConfig.from_dict(raw, tmp_path).to_dict(), tmp_path).sweep.trial == 2
    for bad, message in [({"study": "s", "trial": -1, "params": {}}, "sweep.trial"),
                         ({"study": "s", "trial": 1}, "study, trial and params"),
                         ({"study": "s", "trial": 1, "params": {"lr": [1]}}, "must be a string, a number")]:
        with pytest.raises(UserError, match=message):
            RunConfig.from_dict({**raw, "sweep": bad}, tmp_path)


def test_a_sweep_folder_gets_its_own_report(tmp_path):
    """`mnistlab report SWEEP_DIR`: the best trial, the trials, the figures found inside the folder."""
    from PIL import Image

    from mnistlab.sweep.summary import SweepResult, TrialRow, to_markdown

    out = tmp_path / "sweep"
    out.mkdir()
    (out / "space.toml").write_text('[search]\nlr = [0.1, 0.2]\n')
    rows = (TrialRow(0, "complete", 0.91, {"lr": 0.1}, 3.0, 2, "t0", None),
            TrialRow(1, "pruned", 0.5, {"lr": 0.2}, 1.0, 1, "t1", None),
            TrialRow(2, "complete", 0.93, {"lr": 0.2}, 3.0, 2, "t2", 1))
    result = SweepResult("s", "sqlite:///x", str(out), rows, rows[2], ("optimization_history.png",))
    (out / "summary.json").write_text(json.dumps(result.to_dict()))
    assert "Best: trial 2, val acc 0.9300" in to_markdown(result)
    Image.new("RGB", (20, 10), "red").save(out / "optimization_history.png")
    (out / "param_importances.png").symlink_to(tmp_path / "elsewhere.png")  # leads outside: not embedded
    Image.new("RGB", (20, 10), "blue").save(tmp_path / "elsewhere.png")
    assert cli.main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert html.count("data:image/png") == 1 and "93.00%" in html and "<code>t2</code>" in html
    assert cli.main(["report", str(out), str(out), "-o", str(tmp_path / "r.html")]) == 2  # a sweep goes alone
    (out / "summary.json").write_text(json.dumps({"study": "s", "storage": "x", "trials": [{"number": "1"}]}))
    assert cli.main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 2


@pytest.mark.parametrize("states, target, heartbeat, move", [
    ([], 3, True, "run"),
    (["COMPLETE", "PRUNED", "COMPLETE"], 3, True, "stop"),           # enough finished, whoever ran them
    (["COMPLETE", "RUNNING", "RUNNING"], 3, True, "wait"),           # the rest is in flight: wait, it may go stale
    (["COMPLETE", "RUNNING", "RUNNING"], 3, False, "stop"),          # no heartbeat: nothing would ever be retried
    (["COMPLETE", "FAIL", "RUNNING", "WAITING"], 3, True, "run"),    # a retry waits: take it
    (["COMPLETE", "FAIL"], 3, False, "run"),                         # a failed trial does not count
    (["WAITING"], None, False, "run"),                               # a grid runs what is enqueued
    (["COMPLETE", "RUNNING"], None, True, "wait"),
    (["COMPLETE", "FAIL"], None, True, "stop"),
])
def test_a_worker_runs_waits_or_stops_by_the_studys_trials(states, target, heartbeat, move):
    pytest.importorskip("optuna", reason="needs mnistlab[sweep]")
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from mnistlab.sweep.worker import next_move

    trials = [SimpleNamespace(state=TrialState[s]) for s in states]
    assert next_move(trials, target, heartbeat) == move


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "benchmarks" / "sweeps").glob("*.toml")),
                         ids=lambda p: p.name)
def test_the_benchmark_sweep_files_are_valid(path):
    """The rounds' sweep files stay runnable as the settings change: each parses, and each grid builds configs."""
    from mnistlab.sweep.space import read_space

    space = read_space(path)
    if all(not isinstance(p, Range) or p.kind is int or p.step for p in space.params):
        points = space.grid()
        assert len({json.dumps(space.train_config(p).to_dict(), sort_keys=True) for p in points}) == len(points)


TAKE_TRIALS = """
import sys, warnings
import optuna
from mnistlab.sweep.study import SweepSettings, open_storage
warnings.simplefilter("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)
storage = open_storage(SweepSettings(out=sys.argv[1], study="race", trials=1))
if sys.argv[2] == "make":
    study = optuna.create_study(study_name="race", storage=storage)
    for i in range(90):
        study.enqueue_trial({"x": i})
else:
    study = optuna.load_study(study_name="race", storage=storage)
    for _ in range(30):
        trial = study.ask()
        print(trial.number, flush=True)
        study.tell(trial, 1.0)
"""


def test_workers_on_one_sqlite_study_never_take_the_same_waiting_trial(tmp_path):
    """SQLite ignores the FOR UPDATE that Optuna takes a waiting trial with; without immediate
    transactions (study.serialise_sqlite) two of three processes here fail or take one trial twice."""
    import subprocess
    import sys

    pytest.importorskip("optuna")
    command = [sys.executable, "-c", TAKE_TRIALS, str(tmp_path)]
    subprocess.run([*command, "make"], check=True, timeout=120)
    takers = [subprocess.Popen([*command, "take"], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    taken = [int(n) for p in takers for n in p.communicate(timeout=120)[0].split()]
    assert [p.returncode for p in takers] == [0, 0, 0]
    assert sorted(taken) == list(range(90))


def test_a_storage_password_reaches_the_workers_through_their_environment_only(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    from mnistlab.sweep.study import STORAGE_ENV, SweepSettings

    url = "postgresql+psycopg2://me:s3cret-pw@db.lab:5432/optuna"
    settings = SweepSettings(out=str(tmp_path), study="s", trials=2, storage=url)
    path = settings.write()
    written = json.loads(path.read_text())["storage"]
    assert "s3cret-pw" not in path.read_text() and written.endswith("me:***@db.lab:5432/optuna")
    env = settings.worker_env()
    assert env[STORAGE_ENV] == url
    monkeypatch.setenv(STORAGE_ENV, url)
    assert SweepSettings.read(path) == settings  # a worker started with that environment
    monkeypatch.setenv(STORAGE_ENV, "postgresql+psycopg2://me:other@elsewhere/optuna")
    assert SweepSettings.read(path).storage.endswith("me:***@db.lab:5432/optuna")  # not another server's password
    monkeypatch.delenv(STORAGE_ENV)
    without = SweepSettings(out=str(tmp_path), study="s", trials=2, storage="postgresql+psycopg2://me@db.lab/optuna")
    assert STORAGE_ENV not in without.worker_env() and SweepSettings.read(without.write()) == without


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # trials taken by hand here, not by optimize
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_trial_whose_worker_here_was_killed_runs_again_when_the_command_is_run_again(tmp_path, storage):
    """A worker killed with SIGKILL leaves its trial running (a journal file has no heartbeat; SQLite's
    takes two intervals). The same command marks it failed at once and enqueues its point again; a
    trial whose worker still runs, or ran on another machine, is left alone."""
    import socket
    import subprocess
    import sys

    optuna = pytest.importorskip("optuna")
    from mnistlab.sweep.runner import prepare
    from mnistlab.sweep.study import SweepSettings, open_study

    space = parse_space('[base]\narch = "simple"\n[search]\nlr = [0.001, 0.002, 0.003]\n', "g.toml")
    settings = SweepSettings(out=str(tmp_path / "sweep"), study="g", sampler="grid", quiet=True,
                             storage=f"journal:{tmp_path / 'g.journal'}" if storage == "journal" else None)
    prepare(space, settings, join=False)
    study = open_study(settings, epochs=1, seed=0, create=False, space_text=space.text)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "mnistlab.sweep.worker"])
    host = socket.gethostname()
    try:
        taken = []
        for worker in (f"{host}:{int(dead.stdout)}", f"{host}:{alive.pid}", "another-machine:1"):
            trial = study.ask()  # a waiting grid point, as a worker takes it
            trial.set_user_attr("worker", worker)
            taken.append((trial.number, study.get_trials()[trial.number].system_attrs["fixed_params"]["lr"]))
        prepare(space, settings, join=False)  # the same command, again
        states = {t.number: t.state.name for t in study.get_trials()}
        assert [states[n] for n, _ in taken] == ["FAIL", "RUNNING", "RUNNING"]
        waiting = [t.params or t.system_attrs["fixed_params"] for t in study.get_trials()
                   if t.state == optuna.trial.TrialState.WAITING]
        assert waiting == [{"lr": taken[0][1]}]  # the lost point, once; the others still run
    finally:
        alive.kill()
        alive.wait()


def test_workers_spread_over_the_gpus_they_may_use(tmp_path, monkeypatch):
    """Five workers on a machine where GPUs 4 and 6 are visible: worker k sees GPU k mod 2 only, each
    with the sweep's environment; on one GPU (or none) all keep the environment as it is."""
    from mnistlab.sweep import runner

    started = []

    class Process:
        def __init__(self, argv, env):
            started.append((argv[-1], env))

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", Process)
    env = {"CUDA_VISIBLE_DEVICES": "4,6", "MNISTLAB_SWEEP_STORAGE": "postgresql://me:pw@db/optuna"}
    assert runner.start_workers(tmp_path / "sweep.json", 5, env) == ([0] * 5, None)
    assert [(i, e["CUDA_VISIBLE_DEVICES"]) for i, e in started] == [("0", "4"), ("1", "6"), ("2", "4"), ("3", "6"),
                                                                   ("4", "4")]
    assert all(e["MNISTLAB_SWEEP_STORAGE"] == env["MNISTLAB_SWEEP_STORAGE"] for _, e in started)
    started.clear()
    runner.start_workers(tmp_path / "sweep.json", 2, {"CUDA_VISIBLE_DEVICES": "1"})
    assert [e for _, e in started] == [{"CUDA_VISIBLE_DEVICES": "1"}] * 2
