"""Named runs of a fixed list (repeats): what each member trains, the state its folder is in, how it runs.

    >>> from mnistlab.config import NOT_LEARNT, TrainConfig, learnt_difference
    >>> m = TrainMember("seed3", TrainConfig(arch="simple", seed=3, epochs=1))
    >>> member_from_dict(m.to_dict()) == m, m.kind
    (True, 'train')

A member is a run directory's name under the repeat's folder and what trains there: a
:class:`TrainMember` (one ``train`` run: ``train --seeds``, ``ensemble-train``) or a
:class:`TransferMember` (one ``transfer`` run: ``transfer-curve``). :data:`KINDS` maps a kind's
name to its class, so the worker runs any member without knowing which kind it is. Running a
member again continues it: a finished one is reused, an interrupted one resumed from its
checkpoint (or restarted when no epoch had finished), and one trained with other settings is a
one-line error unless ``force``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from mnistlab import frameworks, runs
from mnistlab.config import NOT_LEARNT, TrainConfig, learnt_difference
from mnistlab.errors import UserError
from mnistlab.evaluation.evaluate import evaluate_run
from mnistlab.fileio import read_json
from mnistlab.runconfig import RunConfig

EVALUATED = (runs.METRICS, runs.PREDICTIONS, runs.VAL_PREDICTIONS)
# A member's state → what running it does, as the log line says it.
DOING = {
    "new": "training",
    "restart": "training again (no epoch had finished)",
    "resume": "resuming",
    "done": "reusing the finished run",
}


def check_same(run_dir: Path, stored: RunConfig, cfg: TrainConfig) -> None:
    """The run in ``run_dir`` was trained with ``cfg`` (up to :data:`~mnistlab.config.NOT_LEARNT`), or one line."""
    if stored.kind != "train" or stored.framework != cfg.framework or stored.train is None:
        raise UserError(
            f"{run_dir}: not a {cfg.framework} training run; pass --force to replace it or choose another --out"
        )
    difference = learnt_difference(stored.train.to_dict(), cfg)
    if difference is not None:
        key, old, value = difference
        raise UserError(
            f"{run_dir}: trained with {key}={old!r}, not {value!r}; "
            "pass --force to train every member again, or choose another --out"
        )


def member_state(run_dir: Path, cfg: TrainConfig) -> str:
    """``new``, ``restart`` (created, no epoch finished), ``resume`` (interrupted) or ``done``."""
    if not runs.leftovers(run_dir):  # nothing, or only what a writer killed before its config.json left
        return "new"
    if not (run_dir / runs.CONFIG).is_file():
        raise UserError(f"{run_dir}: exists and is not a run directory; move it away or choose another --out")
    check_same(run_dir, runs.read_config(run_dir), cfg)
    if (run_dir / runs.TRAINING).is_file():
        return "done"
    # No checkpoint: no epoch had finished. A checkpoint of a finished run without training.json: the
    # resume writes what is missing.
    return "resume" if (run_dir / runs.CHECKPOINT).is_file() else "restart"


def evaluated(run_dir: Path) -> bool:
    """The run has the files ``mnistlab evaluate`` writes (metrics and both splits' predictions)."""
    return all((run_dir / f).is_file() for f in EVALUATED)


@dataclass
class RunContext:
    """How this process runs members: shared by every member it runs (data loaded once per split)."""

    data_dir: str | None = None
    force: bool = False
    progress: bool = True
    threads: int | None = None  # this worker's share of the cores; None: each member's own setting
    log: Callable[[str], None] = lambda _message: None
    _data: dict[tuple, Any] = field(default_factory=dict)

    def data(self, key: tuple, load: Callable[[], Any]) -> Any:
        if key not in self._data:
            self._data[key] = load()
        return self._data[key]


@dataclass(frozen=True)
class TrainMember:
    """One ``train`` run of ``cfg`` into ``<folder>/<name>``; ``evaluate``: evaluated after training."""

    kind: ClassVar[str] = "train"
    name: str
    cfg: TrainConfig
    evaluate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "cfg": self.cfg.to_dict(), "evaluate": self.evaluate}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainMember:
        return cls(name=raw["name"], cfg=TrainConfig.from_dict(raw["cfg"]), evaluate=bool(raw["evaluate"]))

    def identity(self) -> dict[str, Any]:
        """What the member learns: its dict less the settings of :data:`~mnistlab.config.NOT_LEARNT`."""
        raw = self.to_dict()
        return {**raw, "cfg": {k: v for k, v in raw["cfg"].items() if k not in NOT_LEARNT}}

    def state(self, folder: Path, force: bool) -> str:
        return "new" if force else member_state(folder / self.name, self.cfg)

    def finished(self, folder: Path) -> bool:
        run_dir = folder / self.name
        return (run_dir / runs.TRAINING).is_file() and (not self.evaluate or evaluated(run_dir))

    def run(self, folder: Path, ctx: RunContext) -> str:
        """Train (or resume, or reuse) the member, evaluate it if asked; the state it was found in."""
        from mnistlab.data import datasets

        run_dir, cfg = folder / self.name, self.cfg
        if ctx.threads and cfg.threads is None:
            cfg = dataclasses.replace(cfg, threads=ctx.threads)
        state = self.state(folder, ctx.force)
        train = frameworks.get(cfg.framework).train
        if state in ("new", "restart"):
            data = ctx.data(
                ("train", cfg.dataset, cfg.val_size, cfg.split_seed, cfg.train_subset),
                lambda: datasets.load_train_val(
                    cfg.dataset,
                    val_size=cfg.val_size,
                    seed=cfg.split_seed,
                    data_dir=ctx.data_dir,
                    train_subset=cfg.train_subset,
                ),
            )
            if state == "restart":  # nothing learnt there: replaced without a warning about a --force not given
                runs.prepare_run_dir(run_dir, rebuild=True)
            train(cfg, run_dir, data_dir=ctx.data_dir, force=ctx.force, progress=ctx.progress, data=data)
        elif state == "resume":
            train(None, run_dir, data_dir=ctx.data_dir, resume=True, progress=ctx.progress)
        # A run trained or rebuilt here has no evaluation files yet; a reused one may have them already.
        if self.evaluate and not evaluated(run_dir):
            evaluate_run(run_dir, data_dir=ctx.data_dir)
        return state


@dataclass(frozen=True)
class TransferMember:
    """One ``transfer`` run from the run ``source`` to data set ``to`` into ``<folder>/<name>``, then evaluated."""

    kind: ClassVar[str] = "transfer"
    name: str
    source: str
    to: str
    mode: str
    seed: int
    subset: int | None = None  # labelled target images; None: all
    epochs: int | None = None
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TransferMember:
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k != "threads"}

    def finished(self, folder: Path) -> bool:
        return (folder / self.name / runs.METRICS).is_file()

    def state(self, folder: Path, force: bool) -> str:
        """``done`` once evaluated; anything else there is a run stopped half-way, trained again."""
        run_dir = folder / self.name
        if (run_dir / runs.METRICS).is_file() and not force:
            return "done"
        return "restart" if run_dir.exists() else "new"

    def run(self, folder: Path, ctx: RunContext) -> str:
        from mnistlab.data import datasets
        from mnistlab.transfer.run import transfer_run

        run_dir, state = folder / self.name, self.state(folder, ctx.force)
        if state != "done":
            if run_dir.exists():
                shutil.rmtree(run_dir)  # inside the repeat's own folder: a run stopped half-way
            data = ctx.data(
                ("transfer", self.to, self.subset),
                lambda: datasets.load_train_val(self.to, data_dir=ctx.data_dir, train_subset=self.subset),
            )
            transfer_run(
                Path(self.source),
                self.to,
                self.mode,
                train_subset=self.subset,
                epochs=self.epochs,
                seed=self.seed,
                out=run_dir,
                data_dir=ctx.data_dir,
                progress=ctx.progress,
                data=data,
                threads=self.threads or ctx.threads,
            )
            evaluate_run(run_dir, data_dir=ctx.data_dir)
        return state


Member = TrainMember | TransferMember
# kind → its class: how a worker rebuilds a member from the plan file.
KINDS: dict[str, type[TrainMember | TransferMember]] = {
    TrainMember.kind: TrainMember,
    TransferMember.kind: TransferMember,
}


def member_from_dict(raw: dict[str, Any]) -> Member:
    return KINDS[raw["kind"]].from_dict(raw)


def best_val_acc(folder: Path, member: Member) -> float:
    """The member's best validation accuracy (its training.json): the study's value for it."""
    return float(read_json(folder / member.name / runs.TRAINING)["best_val_acc"])
