"""Files of "your own data" made from MNIST and Fashion-MNIST, for the README's examples of ``data add``.

    python benchmarks/own_data_files.py make OUT [--train 6000] [--test 1000]
    python benchmarks/own_data_files.py score OUT/submission.csv OUT/kaggle/test_labels.csv

``make`` writes ``OUT/kaggle/train.csv`` (Kaggle's Digit Recognizer layout: label, pixel0..pixel783;
the first ``--train`` MNIST training images), ``OUT/kaggle/test.csv`` (no label column: the first
``--test`` MNIST test images) with their labels held back in ``OUT/kaggle/test_labels.csv``, and
``OUT/clothes/`` (a folder of pictures, one sub-folder per class, 600 Fashion-MNIST training images
as PNG, every seventh one 56×56). ``score`` prints the accuracy of a submission against the labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab.data.datasets import load_split


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray | None) -> None:
    flat = images.reshape(len(images), -1)
    head = (["label"] if labels is not None else []) + [f"pixel{i}" for i in range(flat.shape[1])]
    rows = flat if labels is None else np.column_stack([labels, flat])
    path.write_text("\n".join([",".join(head)] + [",".join(map(str, r)) for r in rows]) + "\n")


def make(out: Path, n_train: int, n_test: int) -> None:
    kaggle = out / "kaggle"
    kaggle.mkdir(parents=True, exist_ok=True)
    x, y = (a[:n_train].numpy() for a in load_split("mnist", "train"))
    tx, ty = (a[:n_test].numpy() for a in load_split("mnist", "test"))
    write_csv(kaggle / "train.csv", x, y)
    write_csv(kaggle / "test.csv", tx, None)
    (kaggle / "test_labels.csv").write_text("ImageId,Label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(ty, 1)))
    fx, fy = (a[:600].numpy() for a in load_split("fashion-mnist", "train"))
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
    for i, (img, label) in enumerate(zip(fx, fy)):
        folder = out / "clothes" / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(img)
        picture = picture.resize((56, 56)) if i % 7 == 0 else picture
        picture.save(folder / f"{i:04d}.png")
    print(f"wrote {kaggle}/train.csv ({n_train} rows), test.csv ({n_test} rows), test_labels.csv; "
          f"{out}/clothes/ (600 pictures)")


def score(submission: Path, labels: Path) -> None:
    got = np.loadtxt(submission, delimiter=",", skiprows=1, dtype=np.int64)
    want = np.loadtxt(labels, delimiter=",", skiprows=1, dtype=np.int64)
    if not np.array_equal(got[:, 0], want[:, 0]):
        raise SystemExit(f"{submission}: ImageIds differ from {labels}")
    print(f"submission accuracy: {(got[:, 1] == want[:, 1]).mean():.4f} ({int((got[:, 1] != want[:, 1]).sum())} "
          f"errors in {len(want)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("make")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--test", type=int, default=1000)
    p = sub.add_parser("score")
    p.add_argument("submission", type=Path)
    p.add_argument("labels", type=Path)
    args = parser.parse_args()
    if args.action == "make":
        make(args.out, args.train, args.test)
    else:
        score(args.submission, args.labels)


if __name__ == "__main__":
    main()
