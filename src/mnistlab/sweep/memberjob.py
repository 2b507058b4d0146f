"""A sweep worker's job for a fixed list of runs (:mod:`mnistlab.sweep.repeats`): one trial per member.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.sweep.members import TrainMember
    >>> plan_text([TrainMember("seed0", TrainConfig(arch="simple", threads=2))]).count("threads")
    0

The command writes the members to ``PLAN_FILE`` in the folder; each worker reads it, takes the
next enqueued trial, runs the member its ``member`` attribute names (trains, resumes or reuses
it; evaluates it where asked) and returns the run's best validation accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mnistlab.sweep.job import Job, worker_name
from mnistlab.sweep.members import DOING, Member, RunContext, best_val_acc, member_from_dict
from mnistlab.sweep.study import SweepSettings

PLAN_FILE = "repeats-members.json"  # the members, for the workers


def plan_text(members: Sequence[Member]) -> str:
    """The members as the study knows them, less the settings that do not change what a run learns."""
    return json.dumps([m.identity() for m in members], sort_keys=True)


def members_job(settings: SweepSettings) -> Job:
    """The worker's job for a repeat: each trial runs the member its ``member`` attribute names."""
    from mnistlab.training.progress import stderr_log

    folder = Path(settings.out)
    plan = json.loads((folder / PLAN_FILE).read_text(encoding="utf-8"))
    members = [member_from_dict(raw) for raw in plan["members"]]
    by_name = {m.name: m for m in members}
    # Several workers' progress bars would overwrite each other's: one line per member instead.
    ctx = RunContext(
        data_dir=settings.data_dir,
        force=plan["force"],
        progress=settings.workers == 1 and plan["progress"],
        threads=settings.threads,
        log=stderr_log if plan["progress"] else (lambda _message: None),
    )

    def objective(trial: Any) -> float:
        member = by_name[trial.user_attrs["member"]]
        trial.set_user_attr("run_dir", str(folder / member.name))
        trial.set_user_attr("worker", worker_name())
        ctx.log(
            f"member {member.name} (trial {trial.number}, {worker_name()}): {DOING[member.state(folder, ctx.force)]}"
        )
        trial.set_user_attr("member_state", member.run(folder, ctx))
        return best_val_acc(folder, member)

    return Job(text=plan_text(members), epochs=1, target=None, objective=objective)
