"""Registry of data sets and their in-memory tensors: splits, class names, normalisation.

    >>> from mnistlab.data.datasets import list_datasets, get_dataset_info, load_train_val, normalize
    >>> list_datasets()
    ['fashion-mnist', 'mnist']
    >>> get_dataset_info("fashion-mnist").class_names[0]
    'T-shirt/top'
    >>> data = load_train_val("mnist", val_size=5000, seed=0)    # from MNISTLAB_DATA_DIR or the cache
    >>> data.train_x.shape, data.train_x.dtype
    (torch.Size([55000, 28, 28]), torch.uint8)
    >>> normalize(data.val_x, data.info.mean, data.info.std).shape     # float, with a channel axis
    torch.Size([5000, 1, 28, 28])

The whole data set lives in memory as uint8 tensors (55 MB for MNIST); normalisation happens
per batch, so the float copy never has to exist for all 60 000 images at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistlab.data import idx, own, registry, store
from mnistlab.data.registry import DatasetInfo
from mnistlab.errors import DataError, UserError

__all__ = ["DATASETS", "DatasetInfo", "TrainValData", "get_dataset_info", "list_datasets", "load_split",
           "load_train_val", "normalize", "stratified_split", "summary"]


# The facts of each data set (files, checksums, sources, classes, normalisation) live in one
# registry entry; re-exported here because models, reports and the CLI know them by these names.
DATASETS = registry.DATASETS


def list_datasets() -> list[str]:
    """Registered data set names (the CLI's --dataset choices)."""
    return registry.names()


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; an unknown name is a one-line error listing the choices."""
    return registry.get(name)


@dataclass
class TrainValData:
    """Training and validation tensors (uint8 images, int64 labels) carved from the training split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    info: DatasetInfo
    train_indices: torch.Tensor | None = None  # into the official training split, for the run config
    val_indices: torch.Tensor | None = None


def load_split(dataset: str, split: str, data_dir: str | Path | None = None, *,
               offline: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images uint8 [N, 28, 28], labels int64 [N]) for ``split`` in {"train", "test"}.

    Files are found and verified by :func:`mnistlab.data.store.locate`. Each split is read once per
    process; the returned tensors are shared, so clone them before editing in place.
    """
    info = registry.get(dataset, data_dir)  # an unknown name fails here, in one line
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r}; choose 'train' or 'test'")
    if not registry.builtin(dataset):  # added with 'mnistlab data add': arrays in the store, fingerprint checked
        arrays = own.load_arrays(info)
        return torch.from_numpy(arrays[f"{split}-images"]), torch.from_numpy(arrays[f"{split}-labels"])
    paths = store.locate(dataset, data_dir, offline=offline)
    images, labels = paths[f"{split}-images"].resolve(), paths[f"{split}-labels"].resolve()
    # mtime in the key: a file replaced on disk (re-fetch) is read again rather than served stale.
    return _read_pair(dataset, split, str(images), images.stat().st_mtime_ns, str(labels), labels.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)  # 2 data sets x 2 splits
def _read_pair(dataset: str, split: str, images_path: str, _images_mtime: int, labels_path: str,
               _labels_mtime: int) -> tuple[torch.Tensor, torch.Tensor]:
    info = get_dataset_info(dataset)
    size, num_classes = info.image_size, info.num_classes
    # The bytes parsed are the bytes whose checksum was just verified (not a second read of the file).
    x = idx.parse_idx(store.read_verified(dataset, f"{split}-images", images_path), images_path,
                      expected_shape_tail=(size, size))
    y = idx.parse_idx(store.read_verified(dataset, f"{split}-labels", labels_path), labels_path,
                      expected_shape_tail=())
    if len(x) != len(y):
        raise DataError(f"{images_path}: {len(x)} images but {labels_path} has {len(y)} labels; "
                        "re-run 'mnistlab data fetch'")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{labels_path}: label {int(y.max())} outside 0..{num_classes - 1}; "
                        "re-run 'mnistlab data fetch'")
    # np.array copies out of the read-only decompressed buffer, so the tensors own writable memory.
    return torch.from_numpy(np.array(x)), torch.from_numpy(y.astype(np.int64))


def _stratified_pick(labels: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick k indices with per-class counts proportional to class sizes; returns (picked, rest)."""
    # Index bookkeeping in numpy: torch's CPU sort/unique are ~100x slower on 60k elements here.
    y = labels.numpy()
    n = y.size
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder allocation in integers: exact total k, no float rounding, ties by class.
    quota, remainder = (counts * k) // n, (counts * k) % n
    short = k - int(quota.sum())
    order = sorted(range(len(classes)), key=lambda i: (-int(remainder[i]), i))
    quota[order[:short]] += 1
    generator = torch.Generator().manual_seed(seed)  # torch's RNG: same split on every platform
    picked, rest = [], []
    for cls, take in zip(classes, quota):
        members = np.flatnonzero(y == cls)
        members = members[torch.randperm(members.size, generator=generator).numpy()]
        picked.append(members[:take])
        rest.append(members[take:])
    # Sorted so the split is a set (order-free) and gathers walk memory forwards.
    return (torch.from_numpy(np.sort(np.concatenate(picked))),
            torch.from_numpy(np.sort(np.concatenate(rest))))


def stratified_split(labels: torch.Tensor, val_size: int = 5000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (train_indices, val_indices): a seeded, class-stratified hold-out of exactly ``val_size``.

    >>> y = torch.tensor([0] * 6 + [1] * 4)
    >>> train, val = stratified_split(y, val_size=5, seed=0)
    >>> y[val].bincount().tolist(), len(train)
    ([3, 2], 5)
    """
    n = int(labels.numel())
    if not 0 < val_size < n:
        raise UserError(f"val_size must be between 1 and {n - 1} (got {val_size}); pick a smaller --val-size")
    val, train = _stratified_pick(labels, val_size, seed)
    return train, val


def load_train_val(dataset: str, val_size: int = 5000, seed: int = 0, data_dir: str | Path | None = None,
                   train_subset: int | None = None, offline: bool | None = None) -> TrainValData:
    """Carve a stratified validation split from the official training split (the test split stays unseen).

    ``train_subset`` keeps a seeded stratified subset of the *remaining* training images, chosen
    after the validation split so that validation numbers stay comparable across subset sizes.
    """
    info = registry.get(dataset, data_dir)
    x, y = load_split(dataset, "train", data_dir, offline=offline)
    train_idx, val_idx = stratified_split(y, val_size, seed)
    if train_subset is not None:
        available = train_idx.numel()
        if not 0 < train_subset <= available:
            raise UserError(f"train_subset must be between 1 and {available} (got {train_subset}); "
                            "pick a smaller --train-subset or --val-size")
        if train_subset < available:
            keep, _ = _stratified_pick(y[train_idx], train_subset, seed)
            train_idx = train_idx[keep]
    return TrainValData(x[train_idx], y[train_idx], x[val_idx], y[val_idx], info, train_idx, val_idx)


def normalize(x_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 images [N, H, W] or [N, C, H, W] -> float32 [N, C, H, W] as (x / 255 - mean) / std.

    One mean and std for every channel: a colour data set's are measured over all its channels.
    """
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {x_uint8.dtype}; normalise only once")
    x = x_uint8.unsqueeze(1) if x_uint8.dim() == 3 else x_uint8
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"normalize expects [N, H, W] or [N, C, H, W] with C 1 or 3, got {list(x_uint8.shape)}")
    return x.float().div_(255.0).sub_(mean).div_(std)


def summary(dataset: str, data_dir: str | Path | None = None, *, offline: bool | None = None) -> dict:
    """Locations, split sizes, class counts, class names, pinned and measured pixel mean/std."""
    info = registry.get(dataset, data_dir)
    if registry.builtin(dataset):
        paths = store.locate(dataset, data_dir, offline=offline)
    else:
        paths = {key: Path(info.folder or ".") / f"{key}.npy" for key in own.ARRAYS}
    out: dict = {"dataset": dataset, "files": {k: str(p) for k, p in paths.items()},
                 "class_names": list(info.class_names), "mean": info.mean, "std": info.std}
    for split in ("train", "test"):
        x, y = load_split(dataset, split, data_dir, offline=offline)
        out[split] = {"count": int(y.numel()), "class_counts": y.bincount(minlength=info.num_classes).tolist()}
    # A 256-bin histogram gives exact statistics without a 47M-element float copy.
    hist = np.bincount(load_split(dataset, "train", data_dir, offline=offline)[0].numpy().ravel(), minlength=256)
    levels = np.arange(256) / 255.0
    out["measured_mean"] = mean = float(hist @ levels / hist.sum())
    out["measured_std"] = float(np.sqrt(hist @ (levels - mean) ** 2 / hist.sum()))
    return out


def load_test_split(dataset: str, data_dir: str | Path | None = None, *,
                    purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, for the callers that must measure on it; ``purpose`` says why, in one line.

    The one door to the test images: ``evaluate`` scores a finished run here once, and the few
    other callers (an export's self-check, a benchmark's inputs, pictures of chosen test
    examples) name their reason. Nothing that chooses (a checkpoint, a temperature, weights,
    hyper-parameters) may call it.

    >>> x, y = load_test_split("mnist", purpose="final evaluation of a finished run")
    >>> x.shape, y.shape
    (torch.Size([10000, 28, 28]), torch.Size([10000]))
    """
    if not purpose.strip():
        raise ValueError("load_test_split needs a purpose: say why the test split is read")
    return load_split(dataset, "test", data_dir)
