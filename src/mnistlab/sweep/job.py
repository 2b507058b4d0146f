"""What a sweep worker runs: a :class:`Job` (the study's text, the trials wanted, the objective).

    >>> job = Job(text="[search]", epochs=3, target=None, objective=lambda trial: 0.9)
    >>> job.objective(None), worker_name().count(":")
    (0.9, 1)
    >>> worker_alive(os.getpid(), command="python"), worker_alive(os.getpid()), worker_alive(2**22 + 1)
    (True, False, False)

:mod:`mnistlab.sweep.worker` looks the job up by ``SweepSettings.job``: a search over a sweep
file (``space``) or a fixed list of runs (``members``, :mod:`mnistlab.sweep.memberjob`).
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

WORKER_COMMAND = "mnistlab.sweep.worker"  # in a worker process's command line (python -m mnistlab.sweep.worker)


@dataclass(frozen=True)
class Job:
    """What a worker runs: the study's text (checked against the study's), the epochs the pruner sees,
    the finished trials wanted (None: every enqueued one) and the objective."""

    text: str
    epochs: int
    target: int | None
    objective: Callable[[Any], float]


def worker_name() -> str:
    """``host:pid``: which process ran a trial (recorded in the trial's attributes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(pid: int, command: str = WORKER_COMMAND) -> bool:
    """Whether process ``pid`` of this machine runs and, where ``/proc`` tells, runs ``command`` (a pid
    reused by another program is no worker)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to judge
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc here: alive is all we know
        return True
    return command.encode() in cmdline


def fail_lost_trials(study: Any) -> list[int]:
    """Mark failed each running trial whose worker ran on this machine and is gone (killed with SIGKILL,
    out of memory, the machine restarted), with a warning line on stderr for each; their numbers.

    The same command then runs their points (or members) again at once, where an SQL storage's
    heartbeat takes two intervals and a journal file has none. Trials of other machines, and of
    workers still running here, are left alone.
    """
    from optuna.trial import TrialState

    host, lost = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if name == host and pid.isdigit() and not worker_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            lost.append(trial.number)
            what = f"member {trial.user_attrs['member']} (trial {trial.number})" if "member" in trial.user_attrs \
                else f"trial {trial.number}"
            print(f"{what}: its worker ({name}:{pid}) is gone; marked failed, to run again", file=sys.stderr)
    return lost
