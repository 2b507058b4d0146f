"""Fetch missing files into the user cache: capped downloads, verified bytes, one process at a time.

    >>> from mnistlab.data.download import cache_dir
    >>> cache_dir("mnist").parts[-2:]
    ('mnistlab', 'mnist')

:func:`download_all` tries each source in order for each missing file; a source that fails (or
sends more than :func:`download_cap`, or a gzip bomb, or bytes that fail the checksum) is skipped
for the rest of the call. Files land in the cache atomically, re-checked after writing.
:func:`cache_lock` serialises cache work between processes (``fcntl.flock``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from mnistlab.data import idx
from mnistlab.data.info import FileSpec
from mnistlab.data.places import cache_root
from mnistlab.data.sources import AutoProgress, ProgressFn, Source
from mnistlab.errors import DataError
from mnistlab.fileio import write_with

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent fetches there fall back to atomic renames only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("mnistlab.data.store")  # one logger for the whole store, as users see it


def download_cap(spec: FileSpec) -> int:
    """Most bytes a source may send for ``spec``: the raw size plus gzip's worst-case overhead."""
    return spec.nbytes + spec.nbytes // 256 + 4096


def cache_dir(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/mnistlab/<dataset>``, else ``~/.cache/mnistlab/<dataset>``."""
    return cache_root() / dataset


@contextlib.contextmanager
def cache_lock(dataset: str) -> Iterator[None]:
    """Hold an exclusive lock on the data set's cache folder (no-op where the folder is read-only).

    The lock file sits beside the folder (``.<dataset>.lock``), so the folder holds only data files.
    """
    folder = cache_dir(dataset)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder.parent / f".{dataset}.lock", "a+b")
    except OSError:  # read-only cache: nothing will be written there either
        yield
        return
    with handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the handle closes
        yield


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
            payload = source.fetch(spec.filename, progress, max_bytes=download_cap(spec))
            if len(payload) > download_cap(spec):  # a source that ignores the cap is still held to it
                raise ValueError(f"sent {len(payload)} bytes, more than {download_cap(spec)}")
            data = idx.decompress(payload, source.name, max_bytes=spec.nbytes)  # a gzip bomb stops here
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


def download_all(dataset: str, missing: list[FileSpec], found: dict[str, Path], sources: Sequence[Source],
                 progress: ProgressFn | None, tried: dict[str, None]) -> None:
    """Fetch each missing file into the cache (moving it from ``missing`` to ``found``)."""
    reporter = progress if progress is not None else AutoProgress()
    dead: set[str] = set()
    try:
        for spec in list(missing):
            path = _download(dataset, spec, sources, reporter, dead, tried)
            if path is not None:
                found[spec.key] = path
                missing.remove(spec)
    finally:
        getattr(reporter, "close", lambda: None)()
