"""A folder of pictures, one sub-folder per class, → uint8 images and labels (``data add --format folder``).

    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for cls in ("cat", "dog"):
    ...     Path("pets", cls).mkdir(parents=True)
    ...     Image.new("L", (40, 20), 200).save(f"pets/{cls}/1.png")
    >>> raw = read_folder(Path("pets"), size=28, channels=1)
    >>> raw.class_names, raw.train.images.shape, raw.train.labels.tolist()
    (('cat', 'dog'), (2, 28, 28), [0, 1])
    >>> raw.notes
    ['pets: 2 of 2 pictures were not 28×28 and were resized (aspect kept, padded with black)']

The class folders sit in the folder itself, or in ``train/`` and ``test/`` inside it (each with
the same class folders). Pictures are any of the formats ``predict`` reads, decoded under its
rules (:mod:`mnistlab.data.images`: declared size checked before decoding, no interpreters);
files and folders whose names start with ``.`` are skipped. Refused, each in one line naming the
path: a link leading out of the folder, a name that is not UTF-8, an empty class, a single class,
two class names that differ only in case, a test class the training split lacks, and more than
:data:`~mnistlab.data.limits.MAX_IMAGES` pictures or :data:`~mnistlab.data.limits.MAX_SOURCE_BYTES`
bytes in all (counted from the file sizes, before any picture is read).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np

from mnistlab.data.conform import resized_count
from mnistlab.data.images import decode_image, read_file
from mnistlab.data.limits import MAX_IMAGES, MAX_SOURCE_BYTES
from mnistlab.data.pipeline import fit_square, picture_array
from mnistlab.data.readers import Raw, Split
from mnistlab.errors import UserError


def shown(path: Path) -> str:
    """``path`` printable even when its name is not UTF-8 (the bad bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _checked(path: Path, root: Path) -> Path:
    """``path`` if its name is UTF-8 and it stays inside ``root`` (``root`` resolved); else a one-line error."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{shown(path)}: the name is not UTF-8; rename it") from None
    if path.is_symlink() and not path.resolve().is_relative_to(root):
        raise UserError(f"{shown(path)}: a link to {shown(path.resolve())}, outside {shown(root)}; "
                        "copy the file into the folder or remove the link")
    return path


def _entries(folder: Path, root: Path) -> list[Path]:
    return sorted(_checked(p, root) for p in folder.iterdir() if not p.name.startswith("."))


def _pictures(folder: Path, root: Path) -> list[Path]:
    """Every file under ``folder`` (its sub-folders too), checked, in a stable order."""
    out = []
    for p in _entries(folder, root):
        if p.is_dir():
            out += _pictures(p, root)
        elif p.is_file():
            out.append(p)
    return out


def _classes(split_dir: Path, root: Path) -> dict[str, list[Path]]:
    classes = {p.name: _pictures(p, root) for p in _entries(split_dir, root) if p.is_dir()}
    folded: dict[str, str] = {}
    for name, files in classes.items():
        key = unicodedata.normalize("NFC", name).casefold()
        if key in folded:
            raise UserError(f"{shown(split_dir)}: class folders {folded[key]!r} and {name!r} differ only in case "
                            "or accents; merge or rename them")
        folded[key] = name
        if not files:
            raise UserError(f"{shown(split_dir / name)}: an empty class (no pictures); add pictures or remove it")
    return classes


def _load(path: Path, channels: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """One picture → (uint8 ``size``×``size`` [×3], its height and width)."""
    array = picture_array(decode_image(read_file(path), name=shown(path)).image, channels)
    return fit_square(array, size), array.shape[:2]


def _read_split(classes: dict[str, list[Path]], names: tuple[str, ...], size: int,
                channels: int) -> tuple[Split, list[tuple[int, int]]]:
    files = [(p, names.index(name)) for name, paths in classes.items() for p in paths]
    images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    shapes = []
    for i, (path, _) in enumerate(files):
        picture, shape = _load(path, channels, size)
        images[i] = picture.reshape(size, size, channels)
        shapes.append(shape)
    stored = images[..., 0] if channels == 1 else images.transpose(0, 3, 1, 2).copy()
    return Split(stored, np.array([label for _, label in files], dtype=np.int64)), shapes


def read_folder(root: Path, size: int, channels: int) -> Raw:
    """The pictures under ``root`` (see the module docstring) as a :class:`~mnistlab.data.readers.Raw`."""
    real = root.resolve()
    top = {p.name for p in _entries(root, real) if p.is_dir()}
    layout = {"train": root / "train", "test": root / "test"} if "train" in top else {"train": root}
    if "test" in top and "train" not in top:
        raise UserError(f"{shown(root)}: a test/ folder but no train/; put the training class folders in train/")
    splits = {split: _classes(folder, real) for split, folder in layout.items() if folder.is_dir()}
    names = tuple(splits["train"])
    if len(names) < 2:
        raise UserError(f"{shown(layout['train'])}: {len(names)} class folder(s); give one sub-folder per class, "
                        "at least two")
    for name in splits.get("test", {}):
        if name not in names:
            raise UserError(f"{shown(layout['test'] / name)}: a test class the training folder lacks; "
                            f"add {shown(layout['train'] / name)} or remove it")
    paths = [p for classes in splits.values() for files in classes.values() for p in files]
    total = sum(p.stat().st_size for p in paths)
    if len(paths) > MAX_IMAGES or total > MAX_SOURCE_BYTES:
        raise UserError(f"{shown(root)}: {len(paths):,} pictures, {total:,} bytes: over the limit of "
                        f"{MAX_IMAGES:,} pictures and {MAX_SOURCE_BYTES:,} bytes; import fewer")
    read = {split: _read_split(classes, names, size, channels) for split, classes in splits.items()}
    shapes = [s for _, split_shapes in read.values() for s in split_shapes]
    notes = []
    if resized := resized_count(shapes, size):
        notes.append(f"{shown(root)}: {resized} of {len(shapes)} pictures were not {size}×{size} and were resized "
                     "(aspect kept, padded with black)")
    test = read["test"][0] if "test" in read else None
    return Raw("folder", read["train"][0], test, class_names=names, notes=notes)
