"""Train one configuration with several seeds, so comparisons can show the spread.

    >>> from mnistlab.config import TrainConfig
    >>> from mnistlab.experiments.multiseed import parse_seeds, train_seeds
    >>> parse_seeds("0,1,2")
    [0, 1, 2]

Then three trainings, one per seed (each a full epoch of ``simple`` on MNIST)::

    train_seeds(TrainConfig(arch="simple", epochs=1), "runs/simple-seeds", [0, 1, 2])

Each seed trains into ``<out>/seed<k>``. The validation split depends on ``split_seed`` only, so
all seeds share one split and the data is loaded once per process. The seeds are a fixed grid run
by :mod:`mnistlab.sweep.repeats`: with ``RepeatOptions(workers=K)`` K processes train them at
once, and calling again continues (finished seeds kept, an interrupted one resumed).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Sequence

from mnistlab import runs
from mnistlab.config import TrainConfig
from mnistlab.errors import UserError
from mnistlab.fileio import read_json
from mnistlab.sweep.members import TrainMember
from mnistlab.sweep.repeats import RepeatOptions, run_members

MAX_SEEDS = 100  # each seed is a whole training run; more is a typo ("0-1000000"), not a plan
MAX_SEED = 2**31 - 1  # seeds feed torch.manual_seed(seed * 100_003 + epoch): keep that well inside 64 bits


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (or a mix) → a list of at most ``MAX_SEEDS`` distinct non-negative seeds."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d{1,10})(?:-(\d{1,10}))?", part)
        if not match:
            raise UserError(f"--seeds {text[:40]!r}: give integers like 0,1,2 or a range like 0-4")
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi > MAX_SEED:
            raise UserError(f"--seeds: {hi} is above the largest seed {MAX_SEED}; pick smaller seeds")
        # Checked before expanding the range, so "0-2000000000" never builds a list.
        if len(seeds) + max(hi - lo + 1, 0) > MAX_SEEDS:
            raise UserError(f"--seeds {text[:40]!r}: more than {MAX_SEEDS} seeds; train fewer at once")
        seeds += range(lo, hi + 1)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text[:40]!r}: give at least one seed, each once")
    return seeds


def train_seeds(cfg: TrainConfig, out: str | Path, seeds: Sequence[int], *, data_dir: str | None = None,
                force: bool = False, progress: bool = True, options: RepeatOptions | None = None,
                resume_command: str | None = None) -> list[dict[str, Any]]:
    """Train ``cfg`` once per seed into ``out/seed<k>``; return each run's summary with its path.

    The seeds run through :func:`~mnistlab.sweep.repeats.run_members` (``options``: workers, a
    shared study): a seed already trained with these settings is kept, an interrupted one resumed.
    """
    out = Path(out)
    members = [TrainMember(f"seed{seed}", dataclasses.replace(cfg, seed=seed)) for seed in seeds]
    run_members(members, out, options or RepeatOptions(), what="seeds", data_dir=data_dir, force=force, progress=progress,
                resume_command=resume_command)
    return [{"run_dir": str(out / m.name), "seed": m.cfg.seed, **read_json(out / m.name / runs.TRAINING)}
            for m in members]
