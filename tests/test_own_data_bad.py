"""A data set from someone else is data, never code, and bounded: each bad input is one line naming the
file and the fix (exit 2), and the store is left as it was."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.cli import main
from mnistlab.data import folders, readers

pytest_plugins = ["own_data_fixtures"]

HEADER = "label," + ",".join(f"pixel{i}" for i in range(16))


def csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def row(label, value=0) -> str:
    return ",".join([str(label)] + [str(value)] * 16)


def pictures(tmp_path: Path, layout: dict[str, int]) -> Path:
    """A folder of pictures: ``layout`` maps class folder → number of pictures in it."""
    root = tmp_path / "pics"
    for cls, n in layout.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), 40 * i + 20).save(root / cls / f"{i}.png")
    return root


def pickled_npz(tmp_path: Path) -> Path:
    path = tmp_path / "pickle.npz"
    np.savez(path, x=np.array([object()] * 4, dtype=object), y=np.arange(4))
    return path


def huge_header_npz(tmp_path: Path) -> Path:
    """An npz whose x.npy header declares 10⁶ images of 1000×1000 in a few bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**6, 1000, 1000)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(100))
        archive.writestr("y.npy", b"")
    return path


def non_utf8_name(tmp_path: Path) -> Path:
    root = pictures(tmp_path, {"a": 2, "b": 2})
    with open(os.path.join(os.fsencode(root / "a"), b"caf\xe9.png"), "wb") as fh:
        fh.write((root / "a" / "0.png").read_bytes())
    return root


def link_outside(tmp_path: Path) -> Path:
    root = pictures(tmp_path, {"a": 2, "b": 2})
    secret = tmp_path / "secret.png"
    Image.new("L", (8, 8), 99).save(secret)
    (root / "b" / "2.png").symlink_to(secret)
    return root


def truncated_idx(tmp_path: Path) -> Path:
    from own_data_fixtures import write_idx

    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((4, 8, 8), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(4))
    (folder / "train-images-idx3-ubyte.gz").write_bytes((folder / "train-images-idx3-ubyte.gz").read_bytes()[:-9])
    return folder


CASES = {
    "pickle": (pickled_npz, "pickle.npz", "not numbers"),
    "npz header": (huge_header_npz, "huge.npz", "over 536870912 bytes"),
    "ragged CSV row": (lambda t: csv(t, row(0), row(1) + ",7", row(1)), "line 3 has 18 values", "fix or remove"),
    "not a number": (lambda t: csv(t, row(0), row(1, "x"), row(1)), "line 3 holds 'x'", "not a number"),
    "label not whole": (lambda t: csv(t, row(0), row(1.5), row(1)), "label 1.5", "whole number"),
    "negative label": (lambda t: csv(t, row(0), row(-1), row(1)), "label -1", "out of range"),
    "label gap": (lambda t: csv(t, row(0), row(2), row(2)), "no training image has label 1", "empty class"),
    "unlabelled": (lambda t: csv(t, ",".join(["0"] * 16), header=HEADER[6:]), "no 'label' column",
                   "mnistlab predict"),
    "not square": (lambda t: csv(t, row(0)[:-2], header=HEADER.rsplit(",", 1)[0]), "15 pixel columns", "square"),
    "bad header": (lambda t: csv(t, row(0), header=HEADER.replace("pixel3", "px3")), "column 'px3'", "pixel0"),
    "one class": (lambda t: pictures(t, {"only": 3}), "1 class folder(s)", "at least two"),
    "empty class": (lambda t: pictures(t, {"a": 2, "b": 0}), "an empty class", "pics/b"),
    "duplicate names": (lambda t: pictures(t, {"Cat": 2, "cat": 2}), "differ only in case", "rename"),
    "non-UTF-8 name": (non_utf8_name, "caf\\xe9.png", "not UTF-8"),
    "link outside": (link_outside, "2.png: a link to", "outside"),
    "truncated IDX": (truncated_idx, "train-images-idx3-ubyte.gz", "ends early"),
    "not an image": (lambda t: pictures(t, {"a": 2, "b": 2}).joinpath("a", "x.png").write_text("hi") and t / "pics",
                     "x.png", "not a readable image"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_the_file_and_the_store_is_untouched(case, store, tmp_path, capsys):
    make, names, fix = CASES[case]
    path = make(tmp_path)
    code = main(["data", "add", "mine", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert names in err and fix in err, err
    assert sorted(p.name for p in store.iterdir()) == ["fashion-mnist", "mnist"]


def test_caps_are_checked_before_reading_and_named(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readers, "MAX_IMAGES", 2)
    code = main(["data", "add", "mine", str(csv(tmp_path, row(0), row(1), row(1)))])
    assert code == 2 and "over the 2-image limit" in capsys.readouterr().err
    monkeypatch.setattr(folders, "MAX_SOURCE_BYTES", 100)
    code = main(["data", "add", "mine", str(pictures(tmp_path, {"a": 2, "b": 2}))])
    assert code == 2 and "100 bytes" in capsys.readouterr().err
    monkeypatch.setattr(readers, "MAX_SOURCE_BYTES", 10)
    code = main(["data", "add", "mine", str(csv(tmp_path, row(0), row(1)))])
    assert code == 2 and "over the 10-byte limit" in capsys.readouterr().err


def test_options_are_checked_before_any_reading(store, tmp_path, capsys):
    for argv, message in ((["--channels", "3", "--pipeline", "digits"], "--pipeline plain"),
                          (["--size", "4"], "8 to 256"), (["--test-fraction", "0.9"], "at most 0.5")):
        assert main(["data", "add", "mine", str(tmp_path / "nothing.csv"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["data", "add", "Bad Name", str(tmp_path)]) == 2
    assert "cannot name a data set" in capsys.readouterr().err
