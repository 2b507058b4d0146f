"""Atomic file writes: a killed process never leaves a half-written file behind.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"a": 1}); p.read_text().strip().startswith("{")
    True

Every writer goes to a temporary file in the destination's folder (same file system, so the
rename is atomic), fsyncs it, ``os.replace``-s it over the destination, then fsyncs the folder:
after a power cut the path holds either the old file or the whole new one, never a hole.

A process killed mid-write (SIGKILL, power cut) leaves its temporary file behind:
``.<name>.<8 random characters>.tmp`` (:func:`is_temporary` recognises them, and a writer that
holds the folder's lock may delete them). A write that fails (disk full, file too large, a
read-only folder) raises :class:`~mnistlab.errors.WriteFailed`, one line naming the destination
and the system's reason; the destination keeps its previous content.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from mnistlab.errors import UserError, WriteFailed

TEMP_SUFFIX = ".tmp"
# mkstemp's names: prefix + 8 characters from [a-z0-9_] + suffix; an extra suffix when a library insists on one
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_path`'s temporary files (left by a killed writer).

    >>> is_temporary(".config.json.k3x_9a0q.tmp"), is_temporary("config.json"), is_temporary(".hidden.tmp")
    (True, False, False)
    """
    return _TEMPORARY.fullmatch(name) is not None


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    ``suffix`` is added to the temporary name, for libraries that insist on one (Keras: ``.keras``).
    An :class:`OSError` on the way (the writer's included) becomes :class:`~mnistlab.errors.WriteFailed`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX + suffix, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        yield Path(tmp)
        _fsync_file(tmp)  # whatever wrote it (torch.save, safetensors, numpy), its bytes reach the disk first
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # ...and so does the rename
    except WriteFailed:
        raise
    except OSError as exc:  # ENOSPC, EFBIG, EROFS, EACCES...: the reason, without the temporary file's name
        raise WriteFailed.of(path, exc) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(folder: str | Path) -> None:
    """A one-line :class:`UserError` unless a file can be created in ``folder`` (or, where it does not
    exist yet, in its nearest existing parent, where it would be made).

    A probe file is created and deleted: permission bits say nothing for root, a read-only mount or
    an immutable folder.
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.is_dir()), Path("."))
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=TEMP_SUFFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{folder}: cannot write into {existing} ({exc.strerror or exc}); "
                        "choose another --out or make the folder writable") from None


def _fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some platforms (Windows) cannot open a folder; the file itself is synced
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; nothing more we can do
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (for libraries that take a path)."""
    with atomic_path(path, suffix) as tmp:
        writer(tmp)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
