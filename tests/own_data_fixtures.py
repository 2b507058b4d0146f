"""Data sets of one's own, made from slices of MNIST and Fashion-MNIST in every format ``data add`` reads.

A test module loads them with ``pytest_plugins = ["own_data_fixtures"]``. The store each test adds
to is a fresh folder whose mnist/ and fashion-mnist/ link to the shared files: nothing is ever
written beside those.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

N_TRAIN, N_TEST = 600, 100


@dataclass(frozen=True)
class Sources:
    """The source files, and the images and labels they hold (to compare with what is stored)."""

    root: Path
    x: np.ndarray  # MNIST train slice, uint8 [600, 28, 28]
    y: np.ndarray
    tx: np.ndarray  # MNIST test slice, [100, 28, 28]
    ty: np.ndarray  # Kaggle's test.csv labels, held back

    @property
    def npz(self) -> Path:
        return self.root / "keras.npz"

    @property
    def colour(self) -> Path:
        return self.root / "colour32.npz"

    @property
    def train_csv(self) -> Path:
        return self.root / "kaggle" / "train.csv"

    @property
    def test_csv(self) -> Path:
        return self.root / "kaggle" / "test.csv"

    @property
    def folder(self) -> Path:
        return self.root / "pictures"

    @property
    def idx(self) -> Path:
        return self.root / "idx"


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = images.reshape(len(images), -1)
    head = (["label"] if labels is not None else []) + [f"pixel{i}" for i in range(flat.shape[1])]
    rows = flat if labels is None else np.column_stack([labels, flat])
    lines = [",".join(head)] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0801 if array.ndim == 1 else 0x0803
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_sources(root: Path, fashion: tuple[np.ndarray, np.ndarray], mnist_train, mnist_test) -> Sources:
    """Every format from the first 600 training and 100 test images (Fashion-MNIST for the pictures)."""
    x, y = (a[:N_TRAIN].numpy() for a in mnist_train)
    tx, ty = (a[:N_TEST].numpy() for a in mnist_test)
    src = Sources(root, x, y, tx, ty)
    np.savez(src.npz, x_train=x, y_train=y, x_test=tx, y_test=ty)
    # Colour, 32×32, NHWC floats in [0, 1]: the digit in red, its negative in blue.
    rgb = np.stack([x, x // 2, 255 - x], axis=-1).astype(np.float32) / 255
    np.savez(src.colour, x=np.pad(rgb, ((0, 0), (2, 2), (2, 2), (0, 0))), y=y)
    write_csv(src.train_csv, x, y)
    write_csv(src.test_csv, tx, None)
    src.idx.mkdir()
    for name, array in (("train-images-idx3-ubyte.gz", x), ("train-labels-idx1-ubyte.gz", y),
                        ("t10k-images-idx3-ubyte.gz", tx), ("t10k-labels-idx1-ubyte.gz", ty)):
        write_idx(src.idx / name, array)
    fx, fy = (a[:200].numpy() for a in fashion)
    names = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    for i, (img, label) in enumerate(zip(fx, fy)):
        split = "test" if i % 5 == 0 else "train"
        folder = src.folder / split / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(img)
        if i % 7 == 0:  # some pictures larger than 28×28: resized, and said so
            picture = picture.resize((56, 56))
        picture.save(folder / f"{i}.png")
    return src


@pytest.fixture(scope="session")
def own_sources(tmp_path_factory, data_dir) -> Sources:
    from mnistlab.data.datasets import load_split

    return make_sources(tmp_path_factory.mktemp("own-sources"),
                        load_split("fashion-mnist", "train", data_dir),
                        load_split("mnist", "train", data_dir), load_split("mnist", "test", data_dir))


def new_store(root: Path, data_dir: Path) -> Path:
    """An empty store but for links to the built-in data sets."""
    root.mkdir(parents=True)
    for name in ("mnist", "fashion-mnist"):
        (root / name).symlink_to((data_dir / name).resolve())
    return root


@pytest.fixture
def store(tmp_path, data_dir, monkeypatch) -> Path:
    """A fresh store, made the one every lookup uses (MNISTLAB_DATA_DIR) for this test."""
    root = new_store(tmp_path / "store", data_dir)
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(root))
    return root
