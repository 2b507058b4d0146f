"""Repeats: a fixed list of named runs (seeds, ensemble members, transfer-curve points) run to the end.

    from mnistlab.sweep.members import TrainMember
    from mnistlab.sweep.repeats import RepeatOptions, run_members

    members = [TrainMember(f"seed{k}", dataclasses.replace(cfg, seed=k)) for k in (0, 1, 2)]
    states = run_members(members, Path("runs/simple-seeds"), RepeatOptions(workers=2))

``train --seeds``, ``ensemble-train`` and ``transfer-curve`` run their members here. With one
worker and no ``--storage`` the members run one after another in this process (no Optuna needed).
Otherwise they are a fixed grid on the sweep's engine: an Optuna study (SQLite ``repeats.db`` in
the folder, or ``--storage``) holds one trial per member to run, enqueued with the member's name,
never pruned, its value the run's best validation accuracy; ``K`` worker processes
(:mod:`mnistlab.sweep.worker`) take them one at a time, so no member runs twice, and ``--join``
adds workers on another machine. Either way a member's folder says what is left to do
(:mod:`mnistlab.sweep.members`): the same command again reuses finished members and resumes the rest.
"""

from __future__ import annotations

import hashlib
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab.errors import Interrupted, UserError
from mnistlab.fileio import write_text
from mnistlab.stopping import stop_on_signals
from mnistlab.sweep.memberjob import PLAN_FILE, plan_text
from mnistlab.sweep.members import DOING, Member, RunContext
from mnistlab.sweep.study import SweepFailed, SweepSettings

SETTINGS_FILE = "repeats.json"  # the workers' SweepSettings
DEFAULT_DB = "repeats.db"


@dataclass(frozen=True)
class RepeatOptions:
    """How the members run: ``workers`` processes here, the study in ``storage``, ``join`` one started elsewhere."""

    workers: int = 1
    storage: str | None = None  # None: sqlite repeats.db in the folder
    join: bool = False
    threads: int | None = None  # torch threads per worker (the user's --threads); None: the cores shared out
    heartbeat: int = 60

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError("--workers must be at least 1")
        if self.join and not self.storage:
            raise UserError("--join adds workers to a study in a shared --storage URL; name it")

    @property
    def here(self) -> bool:
        """One worker, no shared study: the members run in this process, one after another."""
        return self.workers == 1 and not self.storage and not self.join


def study_name(what: str, members: Sequence[Member]) -> str:
    """``what`` and a digest of the members: the same command makes (or finds) the same study anywhere.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.sweep.members import TrainMember
    >>> a = study_name("seeds", [TrainMember("seed0", TrainConfig(arch="simple", threads=1))])
    >>> a == study_name("seeds", [TrainMember("seed0", TrainConfig(arch="simple", threads=2))]), a[:6]
    (True, 'seeds-')
    """
    return f"{what}-{hashlib.sha256(plan_text(members).encode()).hexdigest()[:12]}"


def run_members(
    members: Sequence[Member],
    folder: Path,
    options: RepeatOptions | None = None,
    *,
    what: str = "repeats",
    data_dir: str | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    resume_command: str | None = None,
) -> dict[str, str]:
    """Run every member into ``folder/<name>``; each member's state before this call (new, restart, resume, done).

    A member trained with other settings is refused before anything runs (unless ``force``).
    SIGINT/SIGTERM stop cleanly with :class:`~mnistlab.errors.Interrupted` naming ``resume_command``.
    """
    options = options or RepeatOptions()
    states = {m.name: m.state(folder, force) for m in members}  # the one-line mistakes first
    log = log or (lambda _message: None)
    try:
        if options.here:
            _run_here(members, folder, RunContext(data_dir=data_dir, force=force, progress=progress, log=log))
        else:
            _run_on_study(
                members,
                folder,
                options,
                what=what,
                data_dir=data_dir,
                force=force,
                progress=progress,
                log=log,
                resume_command=resume_command,
            )
    except KeyboardInterrupt as exc:
        if resume_command is None:  # the run's own line (train --resume RUN) stands
            raise
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), resume_command) from None
    return states


def _run_here(members: Sequence[Member], folder: Path, ctx: RunContext) -> None:
    with stop_on_signals():  # between members too: a SIGTERM there stops cleanly, not silently
        for i, member in enumerate(members, 1):
            ctx.log(f"member {i}/{len(members)} {member.name}: {DOING[member.state(folder, ctx.force)]}")
            member.run(folder, ctx)


def _run_on_study(
    members: Sequence[Member],
    folder: Path,
    options: RepeatOptions,
    *,
    what: str,
    data_dir: str | None,
    force: bool,
    progress: bool,
    log: Callable[[str], None],
    resume_command: str | None,
) -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError(
            "--workers above 1, --storage and --join run members on Optuna: pip install 'mnistlab[sweep]'"
        ) from None
    from mnistlab.sweep.job import fail_lost_trials
    from mnistlab.sweep.runner import check_codes, start_workers, worker_threads
    from mnistlab.sweep.study import open_study, shown_url

    folder.mkdir(parents=True, exist_ok=True)
    storage = options.storage or f"sqlite:///{(folder / DEFAULT_DB).resolve()}"
    settings = SweepSettings(
        out=str(folder),
        study=study_name(what, members),
        workers=options.workers,
        storage=storage,
        sampler="grid",
        pruner="none",
        heartbeat=options.heartbeat,
        threads=options.threads or worker_threads(options.workers),
        data_dir=data_dir,
        quiet=True,
        job="members",
    )
    write_text(
        folder / PLAN_FILE,
        json.dumps({"force": force, "progress": progress, "members": [m.to_dict() for m in members]}, indent=1) + "\n",
    )
    study = open_study(settings, epochs=1, seed=0, create=not options.join, space_text=plan_text(members))
    fail_lost_trials(study)  # members whose workers here were killed outright: they run again
    if not options.join:
        queued = enqueue(study, members, folder, force)
        log(
            f"{len(queued)} of {len(members)} members to run on {options.workers} worker(s); "
            f"study {settings.study} in {shown_url(storage)}"
        )
    # No more workers here than members left (none when every member finished); joined: all of them.
    count = options.workers if options.join else min(options.workers, len(pending(study)))
    if count:
        codes, stopped = start_workers(settings.write(SETTINGS_FILE), count, settings.worker_env())
        check_codes(codes, stopped, resume_command, str(folder))
    left = [m.name for m in members if not m.finished(folder)]
    if left:
        raise SweepFailed(
            f"{len(left)} of {len(members)} members did not finish in {folder} ({', '.join(left[:3])}"
            f"{', ...' if len(left) > 3 else ''}); their messages are above. Run the same command "
            "again to continue"
        )


def pending(study: Any) -> list[Any]:
    """The trials that run or wait to: members a worker has or will have."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))


def enqueue(study: Any, members: Sequence[Member], folder: Path, force: bool) -> list[str]:
    """Enqueue each member not finished (every one with ``force``) that no trial runs or waits for."""
    busy = {t.user_attrs.get("member") for t in pending(study)}
    queued = [m.name for m in members if m.name not in busy and (force or not m.finished(folder))]
    for name in queued:
        study.enqueue_trial({}, user_attrs={"member": name})
    return queued
