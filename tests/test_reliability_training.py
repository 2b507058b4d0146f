"""Training and other long commands under faults (issue 22): a kill at any moment resumes to the
uninterrupted run, one writer per run, a full disk or a read-only folder in one line, and SIGTERM
or SIGINT stop where ``--resume`` continues.

A SIGKILL is imitated in the process by :class:`Killed`, a BaseException that nothing catches, raised
at a chosen file write (before or after its rename); the temporary file and the ``.lock`` it leaves
are left as a real kill would leave them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab import cli, fileio, runs
from mnistlab.config import TrainConfig
from mnistlab.errors import UserError
from mnistlab.training.trainer import train

TINY = dict(arch="simple", epochs=2, train_subset=256, val_size=128, batch_size=64, seed=3, threads=1)
TINY_FLAGS = ["--arch", "simple", "--epochs", "2", "--train-subset", "256", "--val-size", "128",
              "--batch-size", "64", "--seed", "3", "--threads", "1", "--quiet"]
TIMED = ("seconds", "train_seconds", "samples_per_s")  # history columns that measure time, not what was learnt
LOCK = ".lock"  # runs.LOCK


class Killed(BaseException):
    """What SIGKILL does: the process stops here; no ``except Exception`` or clean-up of ours runs."""


@pytest.fixture(scope="module")
def data(data_dir):
    from mnistlab.data.datasets import load_train_val

    cfg = TrainConfig(**TINY)
    return load_train_val(cfg.dataset, val_size=cfg.val_size, seed=cfg.split_seed, train_subset=cfg.train_subset,
                          data_dir=str(data_dir))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data, data_dir) -> Path:
    """The uninterrupted run every recovered one must equal, evaluated (ensembles read its predictions)."""
    from mnistlab.evaluation.evaluate import evaluate_run

    out = tmp_path_factory.mktemp("reference") / "run"
    train(TrainConfig(**TINY), out, progress=False, data=data)
    evaluate_run(out, data_dir=str(data_dir))
    return out


def assert_same_run(run: Path, ref: Path) -> None:
    """``run`` holds what ``ref`` holds: history, weights, gradient log, summary; and nothing of a killed writer."""
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMED} for r in rows]
    got, want = strip(runs.read_history(run)), strip(runs.read_history(ref))
    assert len(got) == len(want) and all(g == pytest.approx(w, abs=1e-6) for g, w in zip(got, want))
    from safetensors.torch import load_file

    got, want = load_file(run / runs.WEIGHTS), load_file(ref / runs.WEIGHTS)
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    assert (run / "grad_norms.csv").read_text() == (ref / "grad_norms.csv").read_text()
    keys = ("best_epoch", "epochs_run", "best_val_acc", "stop_reason")
    summary, expected = json.loads((run / runs.TRAINING).read_text()), json.loads((ref / runs.TRAINING).read_text())
    assert {k: summary[k] for k in keys} == {k: expected[k] for k in keys}
    assert summary["best_val_loss"] == pytest.approx(expected["best_val_loss"], abs=1e-6)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no temporary file, no lock


def kill_at_write(monkeypatch, k: int, after_rename: bool) -> None:
    """The k-th atomic write of the process is its last: killed before its rename, or just after it."""
    real, calls = fileio.atomic_path, [0]

    @contextlib.contextmanager
    def dying(path, *suffix):
        calls[0] += 1
        if calls[0] != k:
            with real(path, *suffix) as tmp:
                yield tmp
            return
        if after_rename:
            with real(path, *suffix) as tmp:
                yield tmp
            raise Killed
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(suffix), dir=path.parent)
        os.close(fd)
        yield Path(tmp)  # the writer fills it; the kill comes before the rename, and nothing deletes it
        raise Killed

    monkeypatch.setattr(fileio, "atomic_path", dying)


def killed_run(monkeypatch, out: Path, data, k: int, after_rename: bool) -> None:
    with monkeypatch.context() as m:
        kill_at_write(m, k, after_rename)
        with pytest.raises(Killed):
            train(TrainConfig(**TINY), out, progress=False, data=data)
    (out / LOCK).touch()  # a killed process leaves its lock file (the kernel drops the lock itself)


def recover(out: Path, data) -> None:
    """What a user does after the kill: ``--resume``, or the same command where no config.json was written."""
    if not (out / runs.CONFIG).is_file():
        with pytest.raises(UserError, match="not a run yet: the command writing it was stopped.*without --resume"):
            train(None, out, resume=True, progress=False, data=data)
        train(TrainConfig(**TINY), out, progress=False, data=data)  # no --force needed
    elif (out / runs.TRAINING).is_file():  # killed after the very last rename: the run was whole
        with pytest.raises(UserError, match="already finished"):
            train(None, out, resume=True, progress=False, data=data)
    else:
        train(None, out, resume=True, progress=False, data=data)


# --- a kill at any moment --------------------------------------------------------------------------


def test_resume_completes_a_run_killed_after_its_last_checkpoint(tmp_path, data, reference, monkeypatch):
    """Killed while writing the last history row: the checkpoint says done, --resume writes what is missing."""
    real = runs.write_history

    def dies_on_the_last_row(run_dir, rows):
        if len(rows) == TINY["epochs"]:
            raise Killed
        real(run_dir, rows)

    monkeypatch.setattr(runs, "write_history", dies_on_the_last_row)
    with pytest.raises(Killed):
        train(TrainConfig(**TINY), tmp_path / "r", progress=False, data=data)
    monkeypatch.setattr(runs, "write_history", real)
    assert len(runs.read_history(tmp_path / "r")) == 1 and not (tmp_path / "r" / runs.TRAINING).exists()
    summary = train(None, tmp_path / "r", resume=True, progress=False, data=data)
    assert summary["resumed"] is True
    assert_same_run(tmp_path / "r", reference)


def test_resume_starts_again_a_run_killed_before_its_first_checkpoint(tmp_path, data, reference, monkeypatch):
    """config.json and epoch 1's weights exist, no checkpoint: --resume trains from epoch 1 with the stored settings."""
    killed_run(monkeypatch, tmp_path / "r", data, k=3, after_rename=True)  # config, grad norms, weights
    assert {runs.CONFIG, runs.WEIGHTS} <= {p.name for p in (tmp_path / "r").iterdir()}
    assert not (tmp_path / "r" / runs.CHECKPOINT).exists()
    train(None, tmp_path / "r", resume=True, progress=False, data=data)
    assert_same_run(tmp_path / "r", reference)


@pytest.mark.slow
@pytest.mark.parametrize("after_rename", [False, True], ids=["before-rename", "after-rename"])
def test_a_kill_at_every_write_resumes_to_the_uninterrupted_run(tmp_path, data, reference, monkeypatch, after_rename):
    """Every atomic write of a 2-epoch run (config, grad norms, weights, checkpoint, history, summary), killed."""
    writes = []
    real = fileio.atomic_path
    monkeypatch.setattr(fileio, "atomic_path", lambda path, *suffix: writes.append(Path(path).name) or real(path, *suffix))
    train(TrainConfig(**TINY), tmp_path / "count", progress=False, data=data)
    monkeypatch.setattr(fileio, "atomic_path", real)
    assert writes[0] == runs.CONFIG and writes[-1] == runs.TRAINING and len(writes) >= 8
    for k, name in enumerate(writes, 1):
        out = tmp_path / f"kill-{k}-{name}"
        killed_run(monkeypatch, out, data, k, after_rename)
        recover(out, data)
        assert_same_run(out, reference)


# --- temporary files of a killed writer --------------------------------------------------------------


def test_a_folder_with_only_temporary_files_is_reused_and_a_run_with_them_forced(tmp_path, reference):
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / ".config.json.k3x_9a0q.tmp").write_text('{"half": ')
    (stopped / LOCK).touch()
    with pytest.raises(UserError, match="not a run yet: the command writing it was stopped"):
        runs.read_config(stopped)
    assert runs.prepare_run_dir(stopped) == stopped  # no --force needed
    assert [p.name for p in stopped.iterdir()] == [LOCK]
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(reference / runs.CONFIG, run / runs.CONFIG)  # killed in epoch 1, while writing the weights
    (run / ".model.safetensors.abcdefgh.tmp").write_bytes(b"half")
    with pytest.raises(UserError, match="a run already exists there; pass --force .* or --resume"):
        runs.prepare_run_dir(run)
    runs.prepare_run_dir(run, force=True)
    assert not any(run.iterdir())


def test_an_ensemble_member_killed_while_writing_its_config_trains_again(tmp_path):
    from mnistlab.experiments.ensemble_train import member_state

    member = tmp_path / "simple-s0"
    member.mkdir()
    (member / ".config.json.k3x_9a0q.tmp").write_text("{")
    assert member_state(member, TrainConfig(**TINY)) == "new"


def test_taking_the_lock_deletes_what_killed_writers_left(tmp_path, reference):
    shutil.copy(reference / runs.CONFIG, tmp_path / runs.CONFIG)
    (tmp_path / ".checkpoint.pt.abcdefgh.tmp").write_bytes(b"half")
    (tmp_path / ".model.keras.abcdefgh.tmp.keras").write_bytes(b"half")
    (tmp_path / "notes.tmp").write_text("the user's")
    with runs.writing(tmp_path):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK, runs.CONFIG, "notes.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [runs.CONFIG, "notes.tmp"]


# --- one writer per run ----------------------------------------------------------------------------


@contextlib.contextmanager
def held_elsewhere(run_dir: Path):
    """The run's lock held through a descriptor of its own: flock refuses it to us as to another process."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield run_dir
    finally:
        os.close(fd)


def test_every_writer_is_refused_while_another_holds_the_run(tmp_path, reference, capsys):
    import mnistlab
    from mnistlab.api.run import export_run
    from mnistlab.ensembles.build import ensemble_runs
    from mnistlab.evaluation.evaluate import evaluate_run
    from mnistlab.export.prune import prune_run
    from mnistlab.transfer import transfer_run

    busy = "another process is writing this run"
    with held_elsewhere(reference):
        for write in (lambda: evaluate_run(reference), lambda: export_run(reference, "onnx"),
                      lambda: prune_run(reference, [0.5]),
                      lambda: train(None, reference, resume=True, progress=False)):
            with pytest.raises(UserError, match=busy):
                write()
        assert cli.main(["evaluate", str(reference)]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"mnistlab evaluate: error: {reference}: {busy}; wait for it to finish (or stop it), or choose another --out"]
        assert mnistlab.load(reference).predict(np.zeros((28, 28), np.uint8)).classes  # readers never wait
    with held_elsewhere(tmp_path / "ens"), pytest.raises(UserError, match=busy):
        ensemble_runs([reference, reference], out=tmp_path / "ens")
    with held_elsewhere(tmp_path / "tr"), pytest.raises(UserError, match=busy):
        transfer_run(reference, "fashion-mnist", "features", out=tmp_path / "tr")
    with held_elsewhere(tmp_path / "new"):
        assert cli.main(["train", *TINY_FLAGS, "--out", str(tmp_path / "new")]) == 2
    assert busy in capsys.readouterr().err
    assert not (tmp_path / "new" / runs.CONFIG).exists()


@pytest.mark.slow
def test_two_trainings_into_one_folder_leave_one_consistent_run(tmp_path, data):
    """Started together, seeds 0 and 1: one trains, the other is refused in one line (exit 2); no mixed run."""
    out = tmp_path / "same"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = {seed: subprocess.Popen([sys.executable, "-m", "mnistlab", "train", *TINY_FLAGS[:-5], "--seed", str(seed),
                                     "--threads", "1", "--quiet", "--out", str(out)],
                                    stderr=subprocess.PIPE, text=True, env=env) for seed in (0, 1)}
    results = {seed: (p.wait(timeout=600), p.stderr.read()) for seed, p in procs.items()}
    assert sorted(code for code, _ in results.values()) == [0, 2], results
    winner = next(seed for seed, (code, _) in results.items() if code == 0)
    refusal = results[1 - winner][1].strip().splitlines()
    assert len(refusal) == 1 and ("another process is writing this run" in refusal[0]
                                  or "a run already exists there" in refusal[0]), refusal
    assert runs.read_config(out).seed == winner
    train(TrainConfig(**{**TINY, "seed": winner}), tmp_path / "alone", progress=False, data=data)
    assert_same_run(out, tmp_path / "alone")


# --- transfer after a kill -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stopped_transfer_resumes_reusing_its_finished_trials(tmp_path, reference, monkeypatch, capsys):
    from mnistlab.training.progress import EpochProgress
    from mnistlab.transfer import transfer_run

    options = dict(train_subset=200, epochs=2, progress=False)
    whole = transfer_run(reference, "fashion-mnist", "finetune", out=tmp_path / "whole", **options)
    out = tmp_path / "stopped"
    real_end, ends = EpochProgress.end_epoch, [0]

    def ctrl_c_in_the_second_trial(self, row, note=""):
        real_end(self, row, note)
        ends[0] += 1
        if ends[0] == 3:  # trial 2 (lower-body), after its first epoch's checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochProgress, "end_epoch", ctrl_c_in_the_second_trial)
    with pytest.raises(KeyboardInterrupt) as stop:  # errors.Interrupted, naming the command that resumes
        transfer_run(reference, "fashion-mnist", "finetune", out=out, **options)
    monkeypatch.setattr(EpochProgress, "end_epoch", real_end)
    assert stop.value.resume.startswith(f"mnistlab transfer {reference} --to fashion-mnist --mode finetune")
    assert stop.value.resume.endswith(f"--out {out} --resume")
    with pytest.raises(UserError, match="holds a stopped transfer; pass --resume .* or --force"):
        transfer_run(reference, "fashion-mnist", "finetune", out=out, **options)
    first = (out / "trials" / "all" / runs.TRAINING).read_bytes()

    resumed = transfer_run(reference, "fashion-mnist", "finetune", out=out, resume=True, **options)
    assert (out / "trials" / "all" / runs.TRAINING).read_bytes() == first  # reused, not trained again
    assert json.loads((out / "trials" / "lower-body" / runs.TRAINING).read_text())["resumed"] is True
    assert resumed["recipe"] == whole["recipe"]
    assert [t["best_val_loss"] for t in resumed["trials"]] == pytest.approx([t["best_val_loss"] for t in whole["trials"]],
                                                                            abs=1e-6)
    again = ["transfer", str(reference), "--to", "fashion-mnist", "--mode", "finetune", "--train-subset", "200",
             "--epochs", "2", "--out", str(out), "--resume", "--quiet"]
    assert cli.main(again) == 0  # every trial finished: all reused
    assert cli.main(again[:-2] + ["--force", "--epochs", "1", "--quiet"]) == 0  # and --force starts again
    assert runs.read_config(out).train.epochs == 1


# --- full disk, file-size limit, read-only folder -----------------------------------------------------


def test_a_full_disk_is_one_line_exit_1_and_keeps_the_last_checkpoint(tmp_path, reference, monkeypatch, capsys):
    out = tmp_path / "r"
    real = fileio._fsync_file

    def no_space_for_a_second_checkpoint(path):
        if Path(path).name.startswith(".checkpoint.pt.") and (out / runs.CHECKPOINT).exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path)

    monkeypatch.setattr(fileio, "_fsync_file", no_space_for_a_second_checkpoint)
    assert cli.main(["train", *TINY_FLAGS, "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mnistlab train: failed: {out / runs.CHECKPOINT}: cannot write (No space left on device)"]
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] == 1
    monkeypatch.setattr(fileio, "_fsync_file", real)
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, reference)


@pytest.mark.slow
def test_past_a_file_size_limit_a_write_fails_in_one_line(tmp_path, reference):
    """RLIMIT_FSIZE after epoch 1 in a child: epoch 2's weights fail with EFBIG (not SIGXFSZ's core dump)."""
    out = tmp_path / "r"
    script = textwrap.dedent(f"""
        import resource, sys
        from mnistlab import cli
        from mnistlab.training.progress import EpochProgress
        real = EpochProgress.end_epoch
        def then_limit(self, row, note=""):
            real(self, row, note)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
        EpochProgress.end_epoch = then_limit
        sys.exit(cli.main({["train", *TINY_FLAGS, "--out", str(out)]!r}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [f"mnistlab train: failed: {out / runs.WEIGHTS}: cannot write (File too large)"]
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] == 1
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, reference)


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` unwritable: permission bits, or for root (whom they do not stop) the immutable flag."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        try:
            os.close(tempfile.mkstemp(dir=folder)[0])
        except OSError:
            yield folder
        else:
            pytest.skip("cannot make a folder read-only here (root without chattr)")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_read_only_folder_is_one_line_exit_2_before_any_data_is_loaded(tmp_path, reference, monkeypatch, capsys):
    def no_data(*args, **kw):
        raise AssertionError("data loaded for a run that cannot be written")

    monkeypatch.setattr("mnistlab.training.fit.load_train_val", no_data)
    monkeypatch.setattr("mnistlab.evaluation.evaluate.load_train_val", no_data)
    shutil.copytree(reference, tmp_path / "ro" / "run")
    with read_only(tmp_path / "ro" / "run"), read_only(tmp_path / "ro"):
        for argv in (["train", *TINY_FLAGS, "--out", str(tmp_path / "ro" / "new")],
                     ["train", "--resume", str(tmp_path / "ro" / "run")], ["evaluate", str(tmp_path / "ro" / "run")]):
            assert cli.main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "cannot write into" in err[0] and "--out" in err[0], err
    assert not (tmp_path / "ro" / "new").exists()


# --- SIGTERM and SIGINT ----------------------------------------------------------------------------


@pytest.fixture
def signals_survived():
    """Handlers that only record: without mnistlab's own, a signal would end the test session; now it fails a test."""
    seen: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: seen.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    yield seen
    for s, handler in previous.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_epoch_stops_at_the_last_epoch_and_names_the_resume(tmp_path, reference, monkeypatch, capsys,
                                                                          signals_survived, signum, code):
    from mnistlab.training.torch_step import TorchStep

    real, batches = TorchStep.train_batch, [0]

    def signalled_in_epoch_two(self, x, y):
        batches[0] += 1
        if batches[0] == 6:  # 4 batches an epoch: the second of epoch 2
            os.kill(os.getpid(), signum)
        return real(self, x, y)

    monkeypatch.setattr(TorchStep, "train_batch", signalled_in_epoch_two)
    out = tmp_path / "r"
    assert cli.main(["train", *TINY_FLAGS, "--out", str(out)]) == code
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mnistlab train: interrupted ({signal.Signals(signum).name}); resume with: mnistlab train --resume {out}"]
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] == 1 and len(runs.read_history(out)) == 1
    assert batches[0] == 6  # the rest of epoch 2 was abandoned
    monkeypatch.setattr(TorchStep, "train_batch", real)
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, reference)


def test_a_signal_during_the_epochs_writes_waits_for_them(tmp_path, reference, monkeypatch, capsys, signals_survived):
    """SIGTERM while the last checkpoint is written: checkpoint and history still agree; --resume completes the run."""
    from mnistlab.training import loop

    real = loop.save_checkpoint

    def signalled_while_saving(path, state):
        if state["epoch"] == TINY["epochs"]:
            os.kill(os.getpid(), signal.SIGTERM)
        real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", signalled_while_saving)
    out = tmp_path / "r"
    assert cli.main(["train", *TINY_FLAGS, "--out", str(out)]) == 143
    assert "resume with: mnistlab train --resume" in capsys.readouterr().err
    assert torch.load(out / runs.CHECKPOINT, weights_only=True)["epoch"] == 2 and len(runs.read_history(out)) == 2
    assert not (out / runs.TRAINING).exists()
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert cli.main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, reference)
