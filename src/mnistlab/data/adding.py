"""``mnistlab data add NAME PATH``: a user's data set → a verified entry in the store, found by name after.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.integers(0, 255, (60, 12, 12), dtype=np.uint8), np.arange(60) % 3
    >>> np.savez("mine.npz", x=x, y=y)
    >>> added = add("mine", "mine.npz", data_dir="store")
    >>> added.info.class_names, added.counts, added.test_carved, added.info.pipeline
    (('0', '1', '2'), {'train': (16, 17, 17), 'test': (4, 3, 3)}, True, 'plain')
    >>> from mnistlab.data import registry
    >>> registry.get("mine", "store").fingerprint == added.info.fingerprint
    True

Steps: read the source (:mod:`~mnistlab.data.readers`, :mod:`~mnistlab.data.folders`) into uint8
images of ``size`` × ``size`` and ``channels``; name the classes (a folder's names, else the label
values, which must run without a gap); carve a stratified test split (``test_fraction``, seed 0)
when the source has none; measure the normalisation on the training split; choose the picture
pipeline from the images unless given; write it all at once (:func:`mnistlab.data.own.commit`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mnistlab.data import folders, own, readers, registry
from mnistlab.data.conform import guess_pipeline
from mnistlab.data.datasets import stratified_split
from mnistlab.data.info import DatasetInfo
from mnistlab.errors import UserError

# The command line's names for the pipelines (what a user picks) → the registry's.
PIPELINE_CHOICES = {"digits": "digit", "objects": "object", "plain": "plain"}
SUBJECTS = {"digit": "digit", "object": "object", "plain": "image"}
SPLIT_SEED = 0  # the carved test split is the same on every machine and every run
VAL_FRACTION = 1 / 12  # MNIST's 5,000 of 60,000: the validation carve a training run defaults to


@dataclass(frozen=True)
class Added:
    """What ``data add`` stored: the entry, images per class in each split, and how they were made."""

    info: DatasetInfo
    source: str
    source_format: str
    counts: dict[str, tuple[int, ...]]
    test_carved: bool
    pipeline_guessed: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        i = self.info
        return {"name": i.name, "source": self.source, "format": self.source_format, "classes": list(i.class_names),
                "counts": {k: list(v) for k, v in self.counts.items()}, "image_size": i.image_size,
                "channels": i.in_channels, "mean": i.mean, "std": i.std, "pipeline": i.pipeline,
                "pipeline_guessed": self.pipeline_guessed, "test_carved": self.test_carved,
                "fingerprint": i.fingerprint, "folder": i.folder}


def _class_indices(raw: readers.Raw, path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """(class names, labels as indices per split); label values must run from their lowest without a gap."""
    labels = {"train": raw.train.labels, **({"test": raw.test.labels} if raw.test is not None else {})}
    if raw.class_names is not None:
        return raw.class_names, labels
    lo, hi = int(labels["train"].min()), int(labels["train"].max())
    if hi - lo + 1 > own.MAX_CLASSES:
        raise UserError(f"{path}: labels from {lo} to {hi} would be {hi - lo + 1:,} classes, over "
                        f"{own.MAX_CLASSES}; give class indices 0, 1, 2, ...")
    present = np.bincount(labels["train"] - lo, minlength=hi - lo + 1)
    if (present == 0).any():
        missing = lo + int(np.flatnonzero(present == 0)[0])
        raise UserError(f"{path}: no training image has label {missing} (labels run {lo}..{hi}): an empty class; "
                        "renumber the labels without gaps")
    test = labels.get("test")
    if test is not None and len(test) and (test.min() < lo or test.max() > hi):
        bad = int(test.min() if test.min() < lo else test.max())
        raise UserError(f"{path}: test label {bad} is not among the training labels {lo}..{hi}; fix the test labels")
    return tuple(str(v) for v in range(lo, hi + 1)), {k: v - lo for k, v in labels.items()}


def _pixel_stats(x: np.ndarray, path: Path) -> tuple[float, float]:
    """Mean and std of the training pixels in [0, 1], from a 256-bin histogram (exact, no float copy)."""
    hist = np.bincount(x.ravel(), minlength=256)
    levels = np.arange(256) / 255.0
    mean = float(hist @ levels / hist.sum())
    std = float(np.sqrt(hist @ (levels - mean) ** 2 / hist.sum()))
    if std < 1e-3:
        raise UserError(f"{path}: every training pixel has the same value; give real pictures")
    return round(mean, 6), round(std, 6)


def _check_options(name: str, size: int, channels: int, pipeline: str | None, test_fraction: float) -> str | None:
    own.check_name(name)
    if registry.builtin(name):
        raise UserError(f"{name!r} is a built-in data set; choose another name for yours")
    if not 8 <= size <= 256:
        raise UserError(f"--size {size}: give 8 to 256 pixels")
    if channels not in (1, 3):
        raise UserError(f"--channels {channels}: give 1 (grayscale) or 3 (colour)")
    if not 0 < test_fraction <= 0.5:
        raise UserError(f"--test-fraction {test_fraction:g}: give a fraction above 0 and at most 0.5")
    if pipeline is None:
        return None
    chosen = PIPELINE_CHOICES.get(pipeline, pipeline)
    if chosen not in own.PIPELINES:
        raise UserError(f"unknown pipeline {pipeline!r}; choose one of: {', '.join(PIPELINE_CHOICES)}")
    if chosen != "plain" and channels != 1:
        raise UserError(f"--pipeline {pipeline} works on grayscale pictures; use --pipeline plain with --channels 3")
    return chosen


def add(name: str, path: str | Path, *, format: str = "auto", size: int = 28, channels: int = 1,
        pipeline: str | None = None, test_fraction: float = 1 / 6, data_dir: str | Path | None = None,
        force: bool = False) -> Added:
    """Import the data set at ``path`` into the store as ``name`` (see the module docstring)."""
    path = Path(path)
    chosen = _check_options(name, size, channels, pipeline, test_fraction)
    if own.entry(name, data_dir) is not None and not force:  # before any reading: a name taken costs nothing
        raise UserError(f"a data set named {name!r} is already in the store; choose another name or pass --force")
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; check the path")
    fmt = readers.detect(path) if format == "auto" else format
    if fmt not in readers.FORMATS[1:]:
        raise UserError(f"unknown format {format!r}; choose one of: {', '.join(readers.FORMATS)}")
    if (fmt in ("folder", "idx")) != path.is_dir():
        raise UserError(f"{path}: --format {fmt} needs {'a folder' if fmt in ('folder', 'idx') else 'a file'}")
    read = {"folder": folders.read_folder, "csv": readers.read_csv, "npz": readers.read_npz,
            "idx": readers.read_idx_folder}[fmt]
    raw = read(path, size, channels)
    names, labels = _class_indices(raw, path)
    train_x, train_y = raw.train.images, labels["train"]
    if raw.test is None:
        k = max(1, round(len(train_y) * test_fraction))
        if not 0 < k < len(train_y):
            raise UserError(f"{path}: {len(train_y)} images cannot spare a test split; give more images")
        keep, test = (t.numpy() for t in stratified_split(torch.from_numpy(train_y), k, SPLIT_SEED))
        test_x, test_y, train_x, train_y = train_x[test], train_y[test], train_x[keep], train_y[keep]
    else:
        test_x, test_y = raw.test.images, labels["test"]
    mean, std = _pixel_stats(train_x, path)
    pipe = chosen or guess_pipeline(train_x)
    counts = {"train": tuple(np.bincount(train_y, minlength=len(names)).tolist()),
              "test": tuple(np.bincount(test_y, minlength=len(names)).tolist())}
    facts = {"class_names": list(names), "mean": mean, "std": std, "pipeline": pipe, "subject": SUBJECTS[pipe],
             "val_size": max(1, round(len(train_y) * VAL_FRACTION)), "counts": {k: list(v) for k, v in counts.items()},
             "source": str(path.resolve()), "source_format": raw.source_format, "test_carved": raw.test is None,
             "test_fraction": test_fraction if raw.test is None else None, "split_seed": SPLIT_SEED,
             "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    arrays = {"train-images": train_x, "train-labels": train_y, "test-images": test_x, "test-labels": test_y}
    info = own.commit(name, arrays, facts, data_dir, force=force)
    return Added(info, str(path), raw.source_format, counts, raw.test is None, chosen is None, raw.notes)
