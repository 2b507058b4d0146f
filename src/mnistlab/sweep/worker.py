"""One sweep worker: a process that runs trials one after another until the sweep has enough.

    python -m mnistlab.sweep.worker DIR/sweep.json INDEX      # what `mnistlab sweep` starts, K times

Each trial is an ordinary run directory ``DIR/trials/trial-NNNN`` whose config records the study,
the trial's number and its parameters. After every epoch the trial reports its validation
accuracy to the study; when the pruner says so the run ends after that epoch with
``stop_reason: "pruned"`` in its training.json (the loop's ``stop_when``), its files complete.
The objective is the run's best validation accuracy: the test split is never opened.
SIGINT and SIGTERM stop the running trial at a consistent point; Optuna records it as failed.

What a trial runs is the settings' ``job`` (:data:`JOBS`): ``space``, a trial drawn from the sweep
file, as above; ``members``, the run of a fixed list that the trial names (repeats:
:mod:`mnistlab.sweep.memberjob`), trained into its own folder, never pruned.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mnistlab.runconfig import SweepTrial
from mnistlab.sweep.job import Job, worker_name
from mnistlab.sweep.memberjob import members_job
from mnistlab.sweep.space import SweepSpace, read_space
from mnistlab.sweep.study import SPACE_FILE, SweepFailed, SweepSettings, open_study

TRIALS_DIR = "trials"
MAX_FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing stops: the cause is not the parameters
POLL_SECONDS = 1.0  # how often a worker with nothing to start looks for trials that went stale


def trial_dir(out: str | Path, number: int) -> Path:
    """The run directory of trial ``number``.

    >>> trial_dir("sweeps/a", 7).as_posix()
    'sweeps/a/trials/trial-0007'
    """
    return Path(out) / TRIALS_DIR / f"trial-{number:04d}"


def objective(trial: Any, space: SweepSpace, settings: SweepSettings) -> float:
    """Train the trial's settings into its run directory; its best validation accuracy."""
    import optuna

    from mnistlab import frameworks

    params = {p.name: p.suggest(trial) for p in space.params}
    extra = {"threads": settings.threads} if settings.threads and "threads" not in space.settings(params) else {}
    cfg = space.train_config(params, **extra)
    out = trial_dir(settings.out, trial.number)
    trial.set_user_attr("run_dir", str(out))
    trial.set_user_attr("worker", worker_name())

    def report(row: dict[str, float]) -> str | None:
        trial.report(row["val_acc"], int(row["epoch"]))
        return "pruned" if trial.should_prune() else None

    summary = frameworks.get(cfg.framework).train(
        cfg, out, data_dir=settings.data_dir, progress=False, stop_when=report,
        config_extra={"sweep": SweepTrial(study=settings.study, trial=trial.number, params=params)})
    for key in ("best_val_acc", "best_epoch", "epochs_run", "train_seconds", "stop_reason"):
        trial.set_user_attr(key, summary[key])
    if summary["stop_reason"] == "pruned":
        raise optuna.TrialPruned(f"after epoch {summary['epochs_run']}")
    return float(summary["best_val_acc"])


def space_job(settings: SweepSettings) -> Job:
    """A search: trials drawn from the sweep file copied into the sweep folder."""
    space = read_space(Path(settings.out) / SPACE_FILE)
    return Job(text=space.text, epochs=space.train_config({}).epochs,
               target=None if settings.sampler == "grid" else settings.trials,
               objective=lambda trial: objective(trial, space, settings))


# SweepSettings.job → the job its workers run.
JOBS: dict[str, Callable[[SweepSettings], Job]] = {"space": space_job, "members": members_job}


def next_move(trials: list[Any], target: int | None, heartbeat: bool) -> str:
    """``run``, ``wait`` or ``stop``, from the study's trials (``target``: finished trials wanted; None: a grid).

    A worker waits only where a running trial may yet go stale (SQL storages' heartbeat) and its
    retry would be needed.
    """
    from optuna.trial import TrialState

    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    finished = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
    waiting, running = count[TrialState.WAITING], count[TrialState.RUNNING]
    if target is not None and finished >= target:
        return "stop"
    if waiting or (target is not None and finished + running < target):
        return "run"
    return "wait" if running and heartbeat else "stop"


def run_worker(settings: SweepSettings, job: Job, index: int) -> None:
    """Run trials until :func:`next_move` says stop."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    from mnistlab.training.loop import TrainingFailed

    # Each worker its own sampler seed: the same seed in two workers would draw the same first trials.
    study = open_study(settings, epochs=job.epochs, seed=settings.seed + index, create=False, space_text=job.text)
    heartbeat = not settings.storage_url().startswith("journal:")
    target = job.target
    failures: list[bool] = []
    while True:
        if heartbeat:
            fail_stale_trials(study)
        move = next_move(study.get_trials(deepcopy=False), target, heartbeat)
        if move == "stop":
            return
        if move == "wait":
            time.sleep(POLL_SECONDS)
            continue
        ran: list[Any] = []
        study.optimize(job.objective, n_trials=1, catch=(TrainingFailed,),
                       callbacks=[lambda _study, frozen, ran=ran: ran.append(frozen)], gc_after_trial=False)
        failures = [*failures, ran[0].state == TrialState.FAIL][-MAX_FAILURES_IN_A_ROW:]
        if len(failures) == MAX_FAILURES_IN_A_ROW and all(failures):
            raise SweepFailed(f"{MAX_FAILURES_IN_A_ROW} trials in a row failed; see their messages above")


def _no_traceback_when_stopped(record: logging.LogRecord) -> bool:
    """Optuna logs a trial's exception with its traceback; a trial stopped by SIGINT/SIGTERM is no
    failure to debug (its "failed" line stays)."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def main(argv: list[str] | None = None) -> int:
    """The worker process: its exit code as the CLI's (0, 1, 2, 128 + a signal)."""
    import signal

    from mnistlab.errors import UserError
    from mnistlab.stopping import stop_on_signals

    path, index = (argv if argv is not None else sys.argv[1:])[:2]
    settings = SweepSettings.read(path)
    logging.getLogger("optuna").addFilter(_no_traceback_when_stopped)
    try:
        with stop_on_signals():
            run_worker(settings, JOBS[settings.job](settings), int(index))
    except UserError as exc:
        print(f"mnistlab worker {index} of study {settings.study}: error: {exc}", file=sys.stderr)
        return 2
    except SweepFailed as exc:
        print(f"mnistlab worker {index} of study {settings.study}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # the sweep command says what stopped it and how to resume
        return 128 + getattr(exc, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
