"""A sweep's settings and its Optuna study: storage, sampler and pruner by name.

    >>> settings = SweepSettings(out="sweeps/demo", study="demo", trials=4)
    >>> settings.storage_url().startswith("sqlite:///"), list(SAMPLERS), list(PRUNERS)
    (True, ['tpe', 'random', 'grid'], ['median', 'hyperband', 'none'])

Storage: by default an SQLite file in the sweep folder (``study.db``); ``journal:PATH`` an Optuna
journal file; any other value an SQLAlchemy URL (``postgresql+psycopg2://user@host/db`` shares
the study between machines). SQL storages record a heartbeat for each running trial: a trial
silent for twice ``heartbeat`` seconds (its worker was killed) is marked failed by the next
worker to start a trial and enqueued again (Optuna's ``RetryHeartbeatStaleTrialCallback``). A journal file
has no heartbeat: a worker killed with SIGKILL leaves its trial running there for ever.

A storage URL's password never reaches a file: ``sweep.json`` holds the URL with ``***`` in its
place, and the workers this machine starts get the whole URL in their environment
(:data:`STORAGE_ENV`). The summaries and messages show the masked URL too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mnistlab.errors import UserError
from mnistlab.fileio import write_json

SETTINGS_FILE = "sweep.json"  # what the workers read: this object
STORAGE_ENV = "MNISTLAB_SWEEP_STORAGE"  # the storage URL with its password, for the workers (never in a file)
SPACE_FILE = "space.toml"  # the sweep file, copied: the folder explains itself
DEFAULT_DB = "study.db"
MAX_RETRY = 2  # a trial whose worker died is run again at most this many times
# Median pruning starts once this many trials finished: sweeps here are tens of trials, so Optuna's
# default (5) would leave most of a small sweep unpruned.
PRUNE_AFTER = 2


class SweepFailed(RuntimeError):
    """Trials kept failing, or workers did (their messages are above); the CLI exits 1."""


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (the command's options, resolved), written to ``DIR/sweep.json`` for the workers."""

    out: str
    study: str
    trials: int | None = None  # None: the grid's size with --sampler grid
    workers: int = 1
    storage: str | None = None  # None: sqlite in ``out``
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    heartbeat: int = 60
    threads: int | None = None  # per worker; None: the trial's own setting
    data_dir: str | None = None
    quiet: bool = False
    track: str | None = None  # an MLflow tracking URI: each finished trial is logged there (mnistlab.tracking)
    job: str = "space"  # what the workers run: a search space (``space.toml``) or a fixed list of members (repeats)

    def __post_init__(self) -> None:
        checks = [
            (self.trials is None or self.trials >= 1, "--trials must be at least 1"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}"),
            (self.pruner in PRUNERS, f"--pruner must be one of {', '.join(PRUNERS)}"),
            (self.heartbeat >= 1, "--heartbeat must be at least 1 second"),
            (self.sampler == "grid" or self.trials is not None, "--trials is required unless --sampler grid"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        return f"sqlite:///{(Path(self.out) / DEFAULT_DB).resolve()}"

    def write(self, name: str = SETTINGS_FILE) -> Path:
        """The settings for the workers in ``out/name``, the storage's password masked (see :meth:`worker_env`)."""
        path = Path(self.out) / name
        record = dataclasses.asdict(self)
        if self.storage:
            record["storage"] = shown_url(self.storage)
        write_json(path, record)
        return path

    def worker_env(self) -> dict[str, str]:
        """The environment of a worker this process starts: its own, and the storage URL where its password
        was masked in the settings file."""
        env = dict(os.environ)
        if self.storage and shown_url(self.storage) != self.storage:
            env[STORAGE_ENV] = self.storage
        return env

    @classmethod
    def read(cls, path: str | Path) -> "SweepSettings":
        """The settings a sweep wrote, with the storage's password from :data:`STORAGE_ENV` where it was masked."""
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        secret = os.environ.get(STORAGE_ENV)
        if secret and record.get("storage") == shown_url(secret):
            record["storage"] = secret
        return cls(**record)


def shown_url(url: str) -> str:
    """A storage URL as files and messages show it: its password replaced by ``***``.

    >>> shown_url("postgresql+psycopg2://me:s3cret@db:5432/optuna")
    'postgresql+psycopg2://me:***@db:5432/optuna'
    >>> shown_url("journal:sweeps/a/study.journal")
    'journal:sweeps/a/study.journal'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith(("journal:", "sqlite")):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL: open_storage says so; nothing to hide in it
        return url


def _tpe(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _random(seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


# name → factory(seed). A grid's points are all enqueued when the study is made (no two workers
# can take the same one); the random sampler underneath is never asked.
SAMPLERS: dict[str, Callable[[int], Any]] = {"tpe": _tpe, "random": _random, "grid": _random}


def _median(epochs: int) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER)


def _hyperband(epochs: int) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))


def _nop(epochs: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


PRUNERS: dict[str, Callable[[int], Any]] = {"median": _median, "hyperband": _hyperband, "none": _nop}


def open_storage(settings: SweepSettings) -> Any:
    """The Optuna storage the settings name (heartbeats and retries on SQL storages)."""
    import optuna
    import sqlalchemy.exc

    url = settings.storage_url()
    # Heartbeats, their callback and fail_stale_trials are marked experimental (since Optuna 2.8):
    # said once here, not in every worker's log.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    # Several worker processes write one SQLite file: wait for its lock rather than fail at once.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=settings.heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.OperationalError, ImportError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--storage {shown_url(url)!r:.80}: cannot open it ({first:.160})") from None
    if url.startswith("sqlite"):
        serialise_sqlite(storage.engine)
    return storage


def serialise_sqlite(engine: Any) -> None:
    """Every transaction on ``engine`` takes SQLite's write lock when it begins (``BEGIN IMMEDIATE``).

    A worker takes a waiting trial by reading its state and setting it to running in one
    transaction, with ``SELECT ... FOR UPDATE``; SQLite ignores FOR UPDATE, so two workers could
    both read "waiting" and run the same trial. An immediate transaction makes the read and the
    write one step. (SQLAlchemy's recipe for pysqlite: the driver's own implicit BEGIN switched off,
    ours emitted on the engine's ``begin`` event.)
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners (Optuna's schema check) are not reused


def open_study(settings: SweepSettings, *, epochs: int, seed: int, create: bool, space_text: str) -> Any:
    """The study, made (``create``) or joined; a study made from another space is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING if settings.quiet else optuna.logging.INFO)
    storage = open_storage(settings)
    sampler, pruner = SAMPLERS[settings.sampler](seed), PRUNERS[settings.pruner](epochs)
    if create:
        study = optuna.create_study(study_name=settings.study, storage=storage, direction="maximize",
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
        if "space" not in study.user_attrs:
            study.set_user_attr("space", space_text)
    else:
        try:
            study = optuna.load_study(study_name=settings.study, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            raise UserError(f"--join: no study {settings.study!r} in {shown_url(settings.storage_url())!r:.80}; "
                            "start it without --join first") from None
    if study.user_attrs.get("space") != space_text:
        raise UserError(f"study {settings.study!r} was made from another sweep file; use the same file, "
                        "or another --study (or --out)")
    return study
