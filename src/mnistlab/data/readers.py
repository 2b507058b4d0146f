"""Read a user's data set (a CSV, an npz, IDX files) into uint8 images and integer labels, bounded and checked.

    >>> import numpy as np
    >>> np.savez("tiny.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]))
    >>> raw = read_npz(Path("tiny.npz"), size=8, channels=1)
    >>> raw.source_format, raw.train.images.shape, raw.train.labels.tolist(), raw.test is None
    ('npz', (4, 8, 8), [0, 1, 0, 1], True)

- ``csv``: Kaggle's Digit Recognizer layout, a ``label`` column and ``pixel0``…``pixelK`` (a
  square image); without ``label`` it is an unlabelled set, read by :func:`read_csv_images`.
- ``npz``: ``x_train, y_train[, x_test, y_test]`` (the ``keras.datasets`` layout) or ``x, y``.
- ``idx``: a folder with the IDX files of the MNIST layout (gzip or raw), as EMNIST, KMNIST and
  QMNIST ship them (``train-images``/``train-labels``, ``t10k-`` or ``test-`` for the test split).

Folders of pictures, the fourth format, are :mod:`mnistlab.data.folders`'s.

A data set from someone else is data, never code: no pickles, each size checked from a header
before anything is read whole, at most :data:`MAX_IMAGES` images and :data:`MAX_SOURCE_BYTES`
bytes; every refusal is one :class:`~mnistlab.errors.UserError` line naming the file and the fix.
"""

from __future__ import annotations

import itertools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistlab import npzfile
from mnistlab.data import idx
from mnistlab.data.conform import conform_array, resize_note
from mnistlab.data.limits import MAX_IMAGES, MAX_SOURCE_BYTES
from mnistlab.errors import DataError, UserError

FORMATS = ("auto", "folder", "csv", "npz", "idx")
MAX_HEADER_BYTES = 1 << 20  # a CSV header line: 3 × 256² pixel names fit
_CHUNK_ROWS = 2048


@dataclass
class Split:
    """uint8 images as stored (``[N, size, size]`` or ``[N, 3, size, size]``) and their int64 labels."""

    images: np.ndarray
    labels: np.ndarray


@dataclass
class Raw:
    """What a reader found: the splits, class names when the source names them, notes for stderr."""

    source_format: str
    train: Split
    test: Split | None = None
    class_names: tuple[str, ...] | None = None  # None: the labels' values name the classes
    notes: list[str] = field(default_factory=list)


def detect(path: Path) -> str:
    """The format of ``path`` from what it is (a folder of IDX files or of pictures) and its suffix."""
    if path.is_dir():
        return "idx" if any("idx" in p.name or "ubyte" in p.name for p in path.iterdir()) else "folder"
    suffix = path.name.lower()
    for fmt, ends in (("csv", (".csv", ".csv.gz")), ("npz", (".npz",))):
        if suffix.endswith(ends):
            return fmt
    raise UserError(f"{path}: cannot tell its format from its name; pass --format folder, csv, npz or idx")


def _check_file(path: Path) -> int:
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    size, cap = path.stat().st_size, MAX_SOURCE_BYTES
    if size > cap:
        raise UserError(f"{path}: {size:,} bytes is over the {cap:,}-byte limit for an import; "
                        "split the data set or import fewer images")
    return size


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    """Whole, non-negative numbers → int64; anything else is a one-line error."""
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 2 and np.asarray(y).shape[1] == 1 else np.asarray(y)
    if y.ndim != 1:
        raise UserError(f"{name}: labels of shape {list(y.shape)}; give one whole number per image (not one-hot)")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (np.mod(y, 1) != 0)
        if bad.any():
            raise UserError(f"{name}: label {float(y[bad][0]):g} (image {int(np.flatnonzero(bad)[0])}) is not a whole "
                            "number; give class indices 0, 1, 2, ...")
    elif y.dtype.kind not in "iu":
        raise UserError(f"{name}: labels of dtype {y.dtype}; give whole numbers (class indices)")
    if y.size and (y.min() < 0 or y.max() >= 2**31):
        raise UserError(f"{name}: label {int(y.min() if y.min() < 0 else y.max())} is out of range; "
                        "give class indices 0, 1, 2, ...")
    return y.astype(np.int64)


def _arrays_split(x: np.ndarray, y: np.ndarray, name: str, size: int, channels: int) -> Split:
    if len(x) != len(y):
        raise UserError(f"{name}: {len(x)} images but {len(y)} labels; give one label per image")
    if len(x) > MAX_IMAGES:
        raise UserError(f"{name}: {len(x):,} images is over the {MAX_IMAGES:,}-image limit; import fewer")
    return Split(conform_array(x, size=size, channels=channels, name=name), _labels(y, name))


def read_npz(path: Path, size: int, channels: int) -> Raw:
    """``x_train, y_train[, x_test, y_test]`` or ``x, y``: uint8 or float, NHW, NHWC or NCHW."""
    _check_file(path)
    fix = "save x_train, y_train, x_test, y_test (or x, y) with numpy.savez"
    try:
        with zipfile.ZipFile(path) as archive:
            members = {n.removesuffix(".npy") for n in archive.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz ({str(exc)[:80]}); {fix}") from None
    layouts = (("x_train", "y_train", "x_test", "y_test"), ("x_train", "y_train"), ("x", "y"))
    keys = next((k for k in layouts if set(k) <= members), None)
    if keys is None:
        raise UserError(f"{path}: arrays {sorted(members)[:6]} are not a known layout; {fix}")
    arrays = npzfile.load_arrays(path, keys, fix=fix)
    train = _arrays_split(arrays[keys[0]], arrays[keys[1]], f"{path} ({keys[0]})", size, channels)
    test = _arrays_split(arrays["x_test"], arrays["y_test"], f"{path} (x_test)", size, channels) \
        if "x_test" in keys else None
    return Raw("npz", train, test, notes=resize_note(arrays[keys[0]], size, str(path)))


def _find_idx(folder: Path, *words: str) -> Path | None:
    hits = sorted(p for p in folder.iterdir() if p.is_file() and any(w in p.name for w in words))
    if len(hits) > 1:
        raise UserError(f"{folder}: several files match {words[0]} ({', '.join(p.name for p in hits[:3])}); "
                        "keep one data set per folder")
    return hits[0] if hits else None


def read_idx_folder(folder: Path, size: int, channels: int) -> Raw:
    """The IDX files of the MNIST layout in ``folder`` (test files optional)."""
    splits, notes = {}, []
    for split, prefixes in (("train", ("train",)), ("test", ("t10k", "test"))):
        images = _find_idx(folder, *(f"{p}-images" for p in prefixes))
        labels = _find_idx(folder, *(f"{p}-labels" for p in prefixes))
        if images is None or labels is None:
            if split == "train":
                raise UserError(f"{folder}: no train-images/train-labels IDX files; give the folder holding "
                                "the four files of the MNIST layout")
            continue
        try:
            x = idx.read_idx(images, expected_shape_tail=None)
            y = idx.read_idx(labels, expected_shape_tail=())
        except DataError as exc:  # its fix ("mnistlab data fetch") is for the built-in data sets
            raise UserError(str(exc).rsplit("; ", 1)[0] + "; give an IDX file of the MNIST layout") from None
        if x.ndim != 3:
            raise UserError(f"{images}: {x.ndim} dimensions; give an images file [N, rows, cols]")
        splits[split] = _arrays_split(x, y, str(images), size, channels)
        notes += resize_note(x, size, str(images)) if split == "train" else []
    return Raw("idx", splits["train"], splits.get("test"), notes=notes)


def _csv_header(path: Path) -> tuple[list[str], int]:
    """The column names and the bytes of the header line (refused when over :data:`MAX_HEADER_BYTES`)."""
    with open(path, "rb") as fh:
        line = fh.readline(MAX_HEADER_BYTES + 1)
    if len(line) > MAX_HEADER_BYTES or not line.endswith(b"\n"):
        raise UserError(f"{path}: no header line within {MAX_HEADER_BYTES:,} bytes; give a CSV whose first line "
                        "names its columns (label, pixel0, pixel1, ...)")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: the header is not UTF-8 text; give a CSV file") from None
    return [c.strip().strip('"').lower() for c in text.strip().split(",")], len(line)


def _csv_layout(path: Path, columns: list[str]) -> tuple[bool, int]:
    """(has a label column, image side) of a Kaggle-layout CSV, or a one-line error."""
    labelled = bool(columns) and columns[0] == "label"
    pixels = columns[1:] if labelled else columns
    if "label" in pixels:
        raise UserError(f"{path}: 'label' must be the first column; put it first, as Kaggle's train.csv does")
    if pixels != [f"pixel{i}" for i in range(len(pixels))]:
        wrong = next((c for i, c in enumerate(pixels) if c != f"pixel{i}"), "none")
        raise UserError(f"{path}: column {wrong!r} is not the next pixel; give 'label' then pixel0, pixel1, ... "
                        "as in Kaggle's Digit Recognizer")
    side = int(np.sqrt(len(pixels)))
    if side * side != len(pixels) or side < 4:
        raise UserError(f"{path}: {len(pixels)} pixel columns are not a square image; give pixel0..pixel{{s²-1}}")
    return labelled, side


def _bad_line(path: Path, lines: list[str], first: int, width: int) -> UserError:
    """Name the first line of ``lines`` (line ``first`` of the file) that is ragged or holds a non-number."""
    for i, line in enumerate(lines):
        cells = line.rstrip("\r\n").split(",")
        if len(cells) != width:
            return UserError(f"{path}: line {first + i} has {len(cells)} values, the header {width}; "
                             "fix or remove that row")
        for cell in cells:
            try:
                float(cell)
            except ValueError:
                return UserError(f"{path}: line {first + i} holds {cell[:20]!r}, not a number; fix or remove that row")
    return UserError(f"{path}: unreadable rows from line {first}; give whole numbers separated by commas")


def _csv_values(path: Path, width: int, header_bytes: int) -> np.ndarray:
    """All rows as float64 chunks → one array [rows, width]; rows capped by :data:`MAX_IMAGES`."""
    size = _check_file(path)
    bound = (size - header_bytes) // (2 * width)  # every value takes at least a digit and a comma
    if bound > MAX_IMAGES:
        raise UserError(f"{path}: up to {bound:,} rows of {width} values, over the {MAX_IMAGES:,}-image limit; "
                        "import fewer images")
    chunks, line_no = [], 2
    with open(path, encoding="utf-8", errors="strict") as fh:
        fh.readline()
        try:
            while lines := [ln for ln in itertools.islice(fh, _CHUNK_ROWS)]:
                rows = [ln for ln in lines if ln.strip()]
                try:
                    values = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2) if rows else None
                except ValueError:
                    raise _bad_line(path, lines, line_no, width) from None
                if values is not None and values.shape[1] != width:
                    raise _bad_line(path, lines, line_no, width)
                if values is not None:
                    chunks.append(values.astype(np.float32))
                line_no += len(lines)
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text near line {line_no}; give a plain CSV file") from None
    if not chunks:
        raise UserError(f"{path}: no rows after the header; give at least one image per class")
    return np.concatenate(chunks)


def read_csv_images(path: Path, size: int, channels: int) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """(images as stored, labels or None, notes) of a Kaggle-layout CSV; an unlabelled CSV gives None."""
    columns, header_bytes = _csv_header(path)
    labelled, side = _csv_layout(path, columns)
    values = _csv_values(path, len(columns), header_bytes)
    pixels = values[:, 1:] if labelled else values
    x = pixels.reshape(-1, side, side)
    if np.all(np.mod(x, 1) == 0) and x.size and x.max() > 1:  # 0..255 integers written as text
        x = x.astype(np.int64)
    images = conform_array(x, size=size, channels=channels, name=str(path))
    return images, (_labels(values[:, 0], str(path)) if labelled else None), resize_note(x, size, str(path))


def read_csv(path: Path, size: int, channels: int) -> Raw:
    images, labels, notes = read_csv_images(path, size, channels)
    if labels is None:
        raise UserError(f"{path}: no 'label' column, so it is a set to predict, not to train on; "
                        "use 'mnistlab predict RUN FILE.csv', or add the labelled train.csv")
    return Raw("csv", Split(images, labels), notes=notes)
