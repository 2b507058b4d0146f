"""The data sets a user added (``mnistlab data add``): one folder each in the store, read back verified.

    >>> import numpy as np
    >>> store = "store"
    >>> arrays = {"train-images": np.zeros((4, 8, 8), np.uint8), "train-labels": np.array([0, 1, 0, 1]),
    ...           "test-images": np.zeros((2, 8, 8), np.uint8), "test-labels": np.array([0, 1])}
    >>> facts = {"class_names": ["a", "b"], "mean": 0.1, "std": 0.2, "pipeline": "plain", "subject": "image"}
    >>> info = commit("tiny", arrays, facts, store)
    >>> info.num_classes, info.image_size, info.in_channels, names(store)
    (2, 8, 1, ['tiny'])
    >>> load_arrays(entry("tiny", store))["train-labels"].tolist()
    [0, 1, 0, 1]

A data set is ``<store>/<name>/``: ``dataset.json`` (class names, normalisation, pipeline,
counts, where it came from, and the SHA-256 ``fingerprint`` of its arrays) beside four ``.npy``
files (uint8 images ``[N, H, W]`` or ``[N, C, H, W]``, int64 labels). The folder is built under
a temporary name in the store and renamed into place whole, so an import that fails or is killed
leaves no half-written data set. Reading checks each array's header (shape, dtype) before its
data, never unpickles, and compares the fingerprint, so a file changed since ``data add`` is named.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.data.info import DatasetInfo
from mnistlab.data.places import store_root
from mnistlab.errors import DataError, UserError
from mnistlab.fileio import write_json

ENTRY = "dataset.json"
FORMAT = "mnistlab-dataset-1"
ARRAYS = ("train-images", "train-labels", "test-images", "test-labels")
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PIPELINES = ("digit", "object", "plain")
MAX_ENTRY_BYTES = 1 << 20
MAX_CLASSES = 1000  # what a run's config accepts (runcheck.DATA_KEYS)
MAX_STORED_BYTES = 4 << 30  # all four arrays of one data set


def check_name(name: str) -> str:
    """``name`` if it can name a data set folder; else a one-line :class:`UserError`."""
    if not NAME.fullmatch(name):
        raise UserError(f"{name!r} cannot name a data set; use 1-64 lower-case letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    return name


def names(data_dir: str | Path | None = None) -> list[str]:
    """The data sets added to the store, sorted (none when the store does not exist)."""
    root = store_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if NAME.fullmatch(p.name) and (p / ENTRY).is_file())


def entry(name: str, data_dir: str | Path | None = None) -> DatasetInfo | None:
    """The entry of the added data set ``name``, or None when the store has none of that name."""
    if not NAME.fullmatch(name):
        return None
    path = store_root(data_dir) / name / ENTRY
    if not path.is_file():
        return None
    stat = path.stat()
    return _read_entry(str(path), stat.st_mtime_ns, stat.st_size)


def facts(info: DatasetInfo) -> dict[str, Any]:
    """Everything ``dataset.json`` says (counts, source, whether the test split was carved, ...)."""
    return _parse(Path(info.folder or ".") / ENTRY)


def _bad(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}; add the data set again with "
                     f"'mnistlab data add {path.parent.name} PATH --force'")


def _parse(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_ENTRY_BYTES:
        raise _bad(path, f"over {MAX_ENTRY_BYTES} bytes")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _bad(path, f"unreadable JSON ({str(exc)[:80]})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _bad(path, f"not a {FORMAT} entry")
    return raw


@functools.lru_cache(maxsize=32)
def _read_entry(path_text: str, _mtime: int, _size: int) -> DatasetInfo:
    path = Path(path_text)
    raw = _parse(path)
    try:
        names_ = tuple(raw["class_names"])
        info = DatasetInfo(
            name=path.parent.name, class_names=names_, mean=float(raw["mean"]), std=float(raw["std"]),
            num_classes=len(names_), image_size=int(raw["image_size"]), in_channels=int(raw["channels"]),
            pipeline=str(raw["pipeline"]), subject=str(raw["subject"]), fingerprint=str(raw["fingerprint"]),
            folder=str(path.parent),
            # A small data set cannot spare MNIST's 5,000 validation images: its own share is recorded.
            train_defaults=(("val_size", int(raw["val_size"])),) if "val_size" in raw else ())
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"missing or bad field ({exc.__class__.__name__}: {exc})") from None
    ok = (all(isinstance(n, str) and n for n in names_) and 2 <= len(names_) <= MAX_CLASSES
          and 0 <= info.mean <= 1 and 0 < info.std <= 1 and 8 <= info.image_size <= 256
          and info.in_channels in (1, 3) and info.pipeline in PIPELINES and len(info.fingerprint) == 64)
    if not ok:
        raise _bad(path, "a field is out of range")
    return info


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the four arrays (name, dtype, shape and bytes of each), in :data:`ARRAYS` order."""
    digest = hashlib.sha256()
    for key in ARRAYS:
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}:{a.shape}\n".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def _read_npy(path: Path, budget: int) -> np.ndarray:
    """One ``.npy`` file, its header checked against ``budget`` bytes before the data is read."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(fh, max_header_size=10000)
            if dtype.hasobject or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > budget:
                raise _bad(path, f"holds {dtype} {list(shape)}, not what data add writes")
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _bad(path, f"unreadable ({str(exc)[:80]})") from None


def load_arrays(info: DatasetInfo) -> dict[str, np.ndarray]:
    """The four arrays of an added data set, after checking them against its entry and fingerprint."""
    folder = Path(info.folder or ".")
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else (0, 0)
                   for p in (folder / f"{k}.npy" for k in ARRAYS))
    return _load(info, stamps)


@functools.lru_cache(maxsize=2)  # a stamp in the key: a data set added again is read again
def _load(info: DatasetInfo, _stamps: tuple) -> dict[str, np.ndarray]:
    folder = Path(info.folder or ".")
    arrays = {}
    for key in ARRAYS:
        path = folder / f"{key}.npy"
        if not path.is_file():
            raise _bad(path, "missing")
        arrays[key] = _read_npy(path, MAX_STORED_BYTES)
    size, c = info.image_size, info.in_channels
    tail = (size, size) if c == 1 else (c, size, size)
    for split in ("train", "test"):
        x, y = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if x.dtype != np.uint8 or x.shape[1:] != tail or y.dtype != np.int64 or y.shape != x.shape[:1]:
            raise _bad(folder / f"{split}-images.npy", f"shapes {list(x.shape)} and {list(y.shape)} do not match "
                                                       f"the entry ({c} channel(s), {size}×{size})")
        if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
            raise _bad(folder / f"{split}-labels.npy", f"a label outside 0..{info.num_classes - 1}")
    if fingerprint(arrays) != info.fingerprint:
        raise _bad(folder / ENTRY, "the arrays changed since they were added (fingerprint differs)")
    return arrays


def commit(name: str, arrays: Mapping[str, np.ndarray], facts_: Mapping[str, Any],
           data_dir: str | Path | None = None, *, force: bool = False) -> DatasetInfo:
    """Write a data set into the store, whole or not at all; returns its entry.

    ``facts_`` holds class names, mean, std, pipeline, subject and anything else to record; the
    image size, channels and fingerprint are taken from ``arrays``.
    """
    check_name(name)
    root = store_root(data_dir)
    final = root / name
    if final.exists() and not force:
        raise UserError(f"{final}: a data set named {name!r} is already in the store; choose another name "
                        "or pass --force to replace it")
    x = arrays["train-images"]
    entry_ = {"format": FORMAT, "name": name, **facts_, "image_size": int(x.shape[-1]),
              "channels": 1 if x.ndim == 3 else int(x.shape[1]), "fingerprint": fingerprint(arrays)}
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    except OSError as exc:
        raise UserError(f"{root}: cannot write the store ({exc.strerror or exc}); "
                        "point --data-dir or MNISTLAB_DATA_DIR at a writable folder") from None
    try:
        for key in ARRAYS:
            np.save(tmp / f"{key}.npy", np.ascontiguousarray(arrays[key]), allow_pickle=False)
        write_json(tmp / ENTRY, entry_)
        os.chmod(tmp, 0o755)
        old = None
        if final.exists():  # --force: the old folder leaves only once the new one is whole
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", suffix=".tmp", dir=root))
            os.replace(final, old / name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    info = entry(name, data_dir)
    assert info is not None, "a data set just written must read back"
    return info
