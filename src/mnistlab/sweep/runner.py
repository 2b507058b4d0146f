"""Start a sweep's workers, wait for them, write the results: what ``mnistlab sweep`` calls.

    from mnistlab.sweep.runner import run_sweep
    from mnistlab.sweep.space import read_space
    from mnistlab.sweep.study import SweepSettings

    result = run_sweep(read_space("space.toml"), SweepSettings(out="sweeps/a", study="a", trials=8, workers=2))
    result.best.number, result.best.value

The sweep folder holds ``space.toml`` (the sweep file), ``sweep.json`` (the settings the workers
read), the study (``study.db`` unless ``--storage``), ``trials/trial-NNNN`` (one run each) and
the results. Running the same command again continues the study: finished trials are kept, a
trial that was interrupted is failed (one whose worker on this machine was killed outright, too:
:func:`~mnistlab.sweep.job.fail_lost_trials`) and (on a grid) its point run again, and new trials
are drawn until ``--trials`` have finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mnistlab.errors import Interrupted, UserError
from mnistlab.fileio import write_text
from mnistlab.stopping import stop_on_signals
from mnistlab.sweep.job import fail_lost_trials
from mnistlab.sweep.space import SweepSpace
from mnistlab.sweep.study import SETTINGS_FILE, SPACE_FILE, SweepFailed, SweepSettings, open_study
from mnistlab.sweep.summary import SweepResult, write_results

EXIT_USAGE = 2


def worker_threads(workers: int) -> int:
    """Torch threads per worker: this machine's cores shared between the workers.

    >>> worker_threads(os.cpu_count() or 1) >= 1
    True
    """
    return max(1, (os.cpu_count() or 1) // workers)


def prepare(space: SweepSpace, settings: SweepSettings, *, join: bool) -> None:
    """The sweep folder with its space and settings; the study made (or joined) and a grid enqueued."""
    out = Path(settings.out)
    copy = out / SPACE_FILE
    if copy.is_file() and copy.read_text(encoding="utf-8") != space.text:
        raise UserError(f"{out} holds a sweep of another sweep file; use the same file or another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text(copy, space.text)
    study = open_study(settings, epochs=space.train_config({}).epochs, seed=settings.seed, create=not join,
                       space_text=space.text)
    fail_lost_trials(study)  # workers of an earlier command here, killed outright
    if settings.sampler == "grid" and not join:
        enqueue_grid(study, space, settings.trials)
    settings.write()


def enqueue_grid(study, space: SweepSpace, limit: int | None) -> None:
    """Enqueue each grid point (the first ``limit``) that no trial has finished, runs or waits for."""
    from optuna.trial import TrialState

    taken = [t.params or t.system_attrs.get("fixed_params", {}) for t in study.get_trials(deepcopy=False)
             if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)]
    for point in space.grid()[:limit]:
        if point not in taken:
            study.enqueue_trial(point)


def run_sweep(space: SweepSpace, settings: SweepSettings, *, join: bool = False,
              resume_command: str | None = None) -> SweepResult:
    """Run the sweep to its end with ``settings.workers`` worker processes; the results, also written."""
    prepare(space, settings, join=join)
    codes, stopped = start_workers(Path(settings.out) / SETTINGS_FILE, settings.workers, settings.worker_env())
    result = write_results(settings)
    if settings.track:
        track_trials(result, settings)
    check_codes(codes, stopped, resume_command, settings.out)
    return result


def visible_gpus(env: dict[str, str]) -> list[str]:
    """The CUDA devices the workers may use: ``CUDA_VISIBLE_DEVICES``'s entries where it is set, else each
    device torch counts (none on a machine without CUDA).

    >>> visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}), visible_gpus({"CUDA_VISIBLE_DEVICES": ""})
    (['2', '3'], [])
    """
    if "CUDA_VISIBLE_DEVICES" in env:
        return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_envs(env: dict[str, str], count: int, gpus: list[str]) -> list[dict[str, str]]:
    """Each of ``count`` workers' environment: with several GPUs, worker i sees only ``gpus[i % n]``
    (``CUDA_VISIBLE_DEVICES``), so K workers pack K / n on each GPU; with one GPU or none all share ``env``
    (K on the one GPU, each with its own process and CUDA context).

    >>> [e.get("CUDA_VISIBLE_DEVICES") for e in worker_envs({}, 5, ["0", "1"])]
    ['0', '1', '0', '1', '0']
    >>> [e.get("CUDA_VISIBLE_DEVICES") for e in worker_envs({}, 2, ["0"])]
    [None, None]
    """
    if len(gpus) < 2:
        return [env] * count
    return [{**env, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(count)]


def start_workers(settings_file: Path, count: int, env: dict[str, str]) -> tuple[list[int], int | None]:
    """``count`` worker processes on ``settings_file`` with the environment ``env``
    (:meth:`SweepSettings.worker_env`), spread over this machine's GPUs (:func:`worker_envs`), waited for:
    (their exit codes, the signal that stopped this process or None). On SIGINT/SIGTERM here the workers
    get SIGTERM and stop cleanly too."""
    command = [sys.executable, "-m", "mnistlab.sweep.worker", str(settings_file)]
    envs = worker_envs(env, count, visible_gpus(env) if count > 1 else [])
    workers = [subprocess.Popen([*command, str(i)], env=envs[i]) for i in range(count)]
    stopped: int | None = None
    try:
        with stop_on_signals():
            codes = [w.wait() for w in workers]
    except KeyboardInterrupt as exc:  # our own SIGINT/SIGTERM: the workers stop their trials cleanly too
        stopped = getattr(exc, "signum", signal.SIGINT)
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        codes = [w.wait() for w in workers]
    return codes, stopped


def check_codes(codes: list[int], stopped: int | None, resume_command: str | None, out: str) -> None:
    """Interrupted (with the command that resumes), a UserError or SweepFailed for the workers' exit codes."""
    stopped = stopped or next((c - 128 for c in codes if c in (128 + signal.SIGINT, 128 + signal.SIGTERM)), None)
    if stopped:
        raise Interrupted(stopped, resume_command)
    if EXIT_USAGE in codes:
        raise UserError("a worker stopped on a mistake (its message is above)")
    if any(codes):
        raise SweepFailed(f"{sum(map(bool, codes))} of {len(codes)} workers failed (their messages are above); "
                          f"the results so far are in {out}")


def track_trials(result: SweepResult, settings: SweepSettings) -> None:
    """Log every finished trial not logged yet to MLflow (experiment: the study's name), the best one with its
    model, one after another here, once the workers are done: no two processes write the store at once."""
    from mnistlab.tracking import Tracker

    tracker = Tracker(settings.track)
    for row in result.trials:
        if row.state in ("complete", "pruned") and row.run_dir and Path(row.run_dir).is_dir():
            if tracker.logged(row.run_dir, experiment=settings.study) is None:
                tracker.log_run(row.run_dir, experiment=settings.study,
                                tags={"optuna.study": settings.study, "optuna.trial": str(row.number),
                                      "optuna.state": row.state},  # the model of the best trial only
                                model=result.best is not None and row.number == result.best.number,
                                data_dir=settings.data_dir)
