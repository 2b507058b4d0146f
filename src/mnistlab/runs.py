"""A run directory: the config, weights, history and results of one training run.

    >>> from mnistlab.runs import read_config, read_history
    >>> config = read_config("runs/simple")       # typed and validated: a RunConfig
    >>> config.kind, config.framework, config.arch, config.dataset
    ('train', 'torch', 'simple', 'mnist')
    >>> [row["epoch"] for row in read_history("runs/simple")]
    [1.0]

Layout (every later command rebuilds everything from these files alone)::

    config.json          schema_version, kind, framework, dataset, arch, model args,
                         normalisation, class names, training settings, threads, environment
    model.safetensors    the best weights (chosen on the validation split)
    checkpoint.pt        the last epoch's full state, for --resume
    history.csv          one row per epoch
    training.json        summary: best epoch, wall time, samples/s, why training stopped
    predictions.npz      test logits and labels (written once by `mnistlab evaluate`)
    val_predictions.npz  validation logits and labels (for calibration and ensemble weights)
    metrics.json         test metrics computed from predictions.npz
    .lock                held by the one process writing the run (see :func:`writing`)

One writer per run: every command that writes into a run (train, evaluate, export, prune,
ensemble, transfer) holds :func:`writing`, an OS lock released when the process ends however it
ends; a second writer is refused in one line. Readers (predict, serve, plots) never wait.

This module knows files, not frameworks: rebuilding a model and predicting live in
:mod:`mnistlab.frameworks.inference` and the framework registry (:mod:`mnistlab.frameworks`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import fcntl
import functools
import io
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch

from mnistlab.version import __version__
from mnistlab.config import SCHEMA_VERSION
from mnistlab.data import own
from mnistlab.data.places import store_root
from mnistlab.errors import UserError
from mnistlab.fileio import check_writable, is_temporary, read_json, write_bytes, write_json, write_text, write_with
from mnistlab.npzfile import load_arrays
from mnistlab.runconfig import RunConfig

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
TRAINING = "training.json"
PREDICTIONS = "predictions.npz"
VAL_PREDICTIONS = "val_predictions.npz"
METRICS = "metrics.json"
LOCK = ".lock"
MAX_CONFIG_BYTES = 1 << 20  # a real config.json is about 2 kB

T = TypeVar("T")
log = logging.getLogger(__name__)  # unconfigured, warnings still reach stderr


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<name>-<YYYYmmdd-HHMMSS>``: sortable and never the same twice in a second."""
    return Path(root) / f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _protected(path: Path) -> bool:
    """``/``, the home folder, the current folder and its parents: never removed, whatever they hold."""
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    return resolved in {Path(resolved.anchor), Path.home().resolve(), cwd, *cwd.parents}


# Processes hold at most a few locks; a dict keyed by the folder lets a writer that calls another
# (transfer → fit, prune → evaluate) re-enter its own lock: a second flock by the same process on
# a new descriptor would refuse it.
_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def writing(run_dir: str | Path, *, create: bool = True) -> Iterator[Path]:
    """Hold the run's write lock (``run_dir/.lock``; the folder is made if needed, unless not ``create``).

    Refused at once, in one line, while another process holds it; released when the block ends or
    the process dies (an flock is the kernel's, not a file's content). Taking it also checks that
    the folder is writable and, in a run (a folder with a config.json), deletes the temporary files
    killed writers left: nobody else writes there now. (In a folder without one they stay until
    :func:`prepare_run_dir`, so that :func:`read_config` can say what happened.) Re-entrant within
    one process.

        >>> import tempfile
        >>> with writing(tempfile.mkdtemp()) as run:
        ...     (run / LOCK).exists()
        True
    """
    run_dir = Path(run_dir)
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise UserError(f"{run_dir}: is not a folder; give a run directory")
    if not create and not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory; train one with 'mnistlab train'")
    key = run_dir.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield run_dir
        finally:
            _HELD[key] -= 1
        return
    check_writable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = _lock(run_dir)
    _HELD[key] = 1
    try:
        if (run_dir / CONFIG).is_file():
            for name in os.listdir(run_dir):
                if is_temporary(name):
                    (run_dir / name).unlink(missing_ok=True)
        yield run_dir
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):  # unlinked while held: the next writer creates a fresh one
            os.unlink(run_dir / LOCK)
        os.close(fd)


def writes_run(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate ``fn(run_dir, ...)``, which writes into an existing run, to run holding :func:`writing`."""
    @functools.wraps(fn)
    def locked(run_dir: str | Path, *args: Any, **kw: Any) -> T:
        with writing(run_dir, create=False):
            return fn(run_dir, *args, **kw)

    return locked


def _lock(run_dir: Path) -> int:
    """An open descriptor of ``run_dir/.lock`` holding its exclusive flock, or a one-line UserError."""
    for _ in range(100):  # another writer may unlink the file between our open and our flock: try again
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{run_dir}: another process is writing this run; wait for it to finish "
                            "(or stop it), or choose another --out") from None
        try:
            if os.fstat(fd).st_ino == os.stat(run_dir / LOCK).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise UserError(f"{run_dir}: could not take the run's lock ({LOCK} keeps changing); try again")


def leftovers(path: Path) -> list[Path]:
    """What ``path`` holds besides a lock and the temporary files of killed writers."""
    return [p for p in path.iterdir() if p.name != LOCK and not is_temporary(p.name)] if path.is_dir() else []


def clear(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete what ``path`` holds except ``keep`` and the lock (which the caller holds: never recreated)."""
    for child in path.iterdir():
        if child.name in (LOCK, *keep):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def prepare_run_dir(path: str | Path, *, force: bool = False, rebuild: bool = False) -> Path:
    """Create ``path`` for a new run; an existing run is replaced only with ``force`` or ``rebuild``.

    Call it holding :func:`writing` on ``path``. A folder holding only the lock and temporary files
    of a killed writer counts as empty. Either flag removes only a folder whose config.json is a
    valid run config of this tool (and never a symbolic link, ``/``, ``~``, the current folder or
    one of its parents). ``force`` (the user's ``--force``) says so on stderr, even under
    ``--quiet``: a run was deleted. ``rebuild`` says nothing: it is for a folder the caller derives
    from other runs and rewrites on every call (ensemble-train's ``<out>/ensemble``), where the
    replacement is the expected outcome.
    """
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"{path}: is a symbolic link; give a real folder as --out")
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder; choose another --out")
    if leftovers(path):
        if not (path / CONFIG).exists():
            raise UserError(f"{path}: exists and is not a run directory; choose another --out")
        if not (force or rebuild):
            raise UserError(f"{path}: a run already exists there; pass --force to overwrite or --resume to continue it")
        if _protected(path):
            raise UserError(f"{path}: refusing to delete {path.resolve()} (the root, home or current folder, "
                            "or a parent of it); give a run's own folder as --out")
        try:
            read_config(path)  # only a run this tool wrote may be deleted
        except UserError as exc:
            raise UserError(f"{path}: --force deletes only a run directory, and this one is not valid "
                            f"({str(exc).removeprefix(str(path / CONFIG) + ': ').split(';')[0]}); "
                            "remove it yourself or choose another --out") from None
        clear(path)
        if not rebuild:
            log.warning("--force: removed the previous run %s", path)
    path.mkdir(parents=True, exist_ok=True)
    clear(path)  # the temporary files a killed writer left
    return path


def git_commit() -> str | None:
    """The commit of the mnistlab source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Versions and hardware, stored in every config so numbers carry their conditions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "mnistlab": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }


def write_config(run_dir: Path, config: RunConfig) -> None:
    """Write ``config`` after the checks a reader makes: a run this tool writes, it can read."""
    raw = config.to_dict()
    RunConfig.from_dict(raw, run_dir)  # the checks a reader makes, on the very object written
    write_json(run_dir / CONFIG, raw)


def read_config(run_dir: str | Path) -> RunConfig:
    """The run's typed config, after checking that ``run_dir`` is a run this version can read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory; train one with 'mnistlab train'")
    path = run_dir / CONFIG
    if not path.is_file():
        if not leftovers(run_dir) and any(is_temporary(p.name) for p in run_dir.iterdir()):
            raise UserError(f"{run_dir}: not a run yet: the command writing it was stopped before its {CONFIG} "
                            "was complete; run that command again, without --resume")
        raise UserError(f"{run_dir}: not a run directory (no {CONFIG}); give the folder 'mnistlab train' wrote")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {path.stat().st_size} bytes is not a config this tool wrote "
                        f"(limit {MAX_CONFIG_BYTES}); restore it or train again")
    try:
        config = read_json(path)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: unreadable JSON ({str(exc)[:100]}); restore it or train again") from None
    version = config.get("schema_version") if isinstance(config, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: schema version {version!r:.20} is not {SCHEMA_VERSION}; use a matching mnistlab version")
    typed = RunConfig.from_dict(config, run_dir)  # types, ranges, known keys: the folder may come from anyone
    check_data_set(typed, run_dir)
    return typed


def check_data_set(config: RunConfig, run_dir: str | Path) -> None:
    """A one-line :class:`UserError` when the store lacks the added data set the run was trained on, or
    holds other images under its name (the fingerprints differ); built-in data sets are pinned."""
    fingerprint = config.data.fingerprint
    if fingerprint is None:
        return
    info = own.entry(config.dataset)
    add = f"'mnistlab data add {config.dataset} PATH'"
    if info is None:
        raise UserError(f"{run_dir}: trained on the data set {config.dataset!r}, which the store {store_root()} "
                        f"lacks; add the same images with {add}, or point --data-dir at the store that has it")
    if info.fingerprint != fingerprint:
        raise UserError(f"{run_dir}: the store {store_root()} holds other images under {config.dataset!r} "
                        f"(fingerprint {info.fingerprint[:12]}..., the run's {fingerprint[:12]}...); add the run's "
                        f"images again with {add} --force, or point --data-dir at the store that has them")


def weights_path(run_dir: str | Path, config: RunConfig) -> Path:
    """The run's model file: ``model.safetensors``, or what the config names (``model.keras``)."""
    return Path(run_dir) / (config.model_file or WEIGHTS)


def save_weights(run_dir: Path, model: torch.nn.Module) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # Serialised in memory, written by Python: a full disk is an OSError with its reason (safetensors'
    # own writer reports it as a SafetensorError), and the file is a few MB at most.
    write_bytes(run_dir / WEIGHTS, save(state, metadata={"format": "pt"}))


def write_history(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / HISTORY, buf.getvalue())


def read_history(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def save_predictions(path: Path, logits: np.ndarray, labels: np.ndarray) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, logits=logits.astype(np.float32), labels=labels.astype(np.int64))

    write_with(path, writer)


def load_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(logits float ``[N, classes]``, labels int ``[N]``) from a predictions .npz, sizes checked first.

    See :func:`mnistlab.npzfile.load_arrays`: shapes and dtypes are read from the headers before
    anything is decompressed, and pickled (object) arrays are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path.parent}: no {path.name}; run 'mnistlab evaluate {path.parent}' first")
    fix = f"run 'mnistlab evaluate {path.parent}' again"
    logits, labels = load_arrays(path, ("logits", "labels"), fix=fix).values()
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise UserError(f"{path}: logits {list(logits.shape)} and labels {list(labels.shape)} do not match; {fix}")
    if labels.dtype.kind == "f" or (len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1])):
        raise UserError(f"{path}: labels outside 0..{logits.shape[1] - 1}; {fix}")
    return logits, labels
