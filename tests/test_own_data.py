"""``mnistlab data add``: every format stored verified and found by name; a failed import leaves nothing;
``predict`` over folders and CSV files; a run on data the store lacks says so."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mnistlab.cli import main
from mnistlab.data import own, registry
from mnistlab.data.datasets import load_split

pytest_plugins = ["own_data_fixtures"]


def run(capsys, *argv):
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err


def stored(name):
    x, y = load_split(name, "train")
    tx, ty = load_split(name, "test")
    return x.numpy(), y.numpy(), tx.numpy(), ty.numpy()


def test_npz_and_idx_keep_their_splits_exactly(store, own_sources, capsys):
    src = own_sources
    for name, path in (("keras", src.npz), ("letters", src.idx)):
        code, out, err = run(capsys, "data", "add", name, path, "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["format"] == ("npz" if name == "keras" else "idx") and not summary["test_carved"]
        x, y, tx, ty = stored(name)
        assert np.array_equal(x, src.x) and np.array_equal(y, src.y)
        assert np.array_equal(tx, src.tx) and np.array_equal(ty, src.ty)
        info = registry.get(name)
        assert info.class_names == tuple("0123456789") and info.pipeline == "digit"  # chosen from the images
        assert info.fingerprint == summary["fingerprint"] and len(info.fingerprint) == 64
        assert info.mean == pytest.approx(src.x.mean() / 255, abs=1e-4)
    assert registry.names() == ["fashion-mnist", "mnist", "keras", "letters"]


def test_a_kaggle_csv_gets_a_stratified_test_split_carved(store, own_sources, capsys):
    code, out, err = run(capsys, "data", "add", "kaggle", own_sources.train_csv)
    assert code == 0, err
    assert "test carved" in out and "digit pipeline" in out and "fingerprint: sha256" in out
    x, y, tx, ty = stored("kaggle")
    assert len(ty) == 100 and len(y) == 500  # 1/6 of 600
    # Nothing lost, nothing twice: the two splits are the source's images.
    both = np.concatenate([x, tx]).reshape(600, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, own_sources.x.reshape(600, -1)))
    expected = np.bincount(own_sources.y, minlength=10) / 6
    assert np.abs(np.bincount(ty, minlength=10) - expected).max() <= 1  # stratified
    entry = own.facts(registry.get("kaggle"))
    assert entry["test_carved"] and entry["split_seed"] == 0 and entry["val_size"] == 42


def test_a_folder_of_pictures_and_a_colour_npz(store, own_sources, capsys):
    code, _, err = run(capsys, "data", "add", "clothes", own_sources.folder)
    assert code == 0, err
    assert "resized (aspect kept, padded with black)" in err  # the 56×56 pictures
    info = registry.get("clothes")
    assert info.class_names[:3] == ("Ankle boot", "Bag", "Coat") and info.pipeline == "object"
    x, _, tx, _ = stored("clothes")
    assert len(x) + len(tx) == 200 and len(tx) == 40 and x.shape[1:] == (28, 28)
    code, _, err = run(capsys, "data", "add", "colour", own_sources.colour, "--channels", "3", "--size", "32")
    assert code == 0 and "resized" not in err, err
    x, *_ = stored("colour")
    info = registry.get("colour")
    assert (info.in_channels, info.image_size, info.pipeline) == (3, 32, "plain")
    assert x.shape[1:] == (3, 32, 32)
    red = set(map(bytes, np.pad(own_sources.x, ((0, 0), (2, 2), (2, 2)))))
    assert set(map(bytes, x[:, 0])) <= red  # float pixels in [0, 1] → the very uint8 values, NHWC → NCHW
    # Colour → gray at import weighs R, G, B as PIL does.
    code, _, err = run(capsys, "data", "add", "gray", own_sources.colour)
    assert code == 0 and "600 images of 32×32 were resized to 28×28" in err, err
    assert stored("gray")[0].shape[1:] == (28, 28)


def test_python_add_and_the_training_defaults(store, own_sources):
    import mnistlab.data
    from mnistlab.config import dataset_defaults

    added = mnistlab.data.add("viapython", own_sources.npz, pipeline="plain")
    assert added.info.pipeline == "plain" and not added.pipeline_guessed and added.counts["test"][0] == 8
    assert dataset_defaults("viapython") == {"val_size": 50}  # 600 / 12: room left to train on
    with pytest.raises(mnistlab.UserError, match="already in the store"):
        mnistlab.data.add("viapython", own_sources.npz)
    again = mnistlab.data.add("viapython", own_sources.idx, force=True, pipeline="digits")
    assert again.info.pipeline == "digit" and again.info.fingerprint == added.info.fingerprint  # same arrays
    with pytest.raises(mnistlab.UserError, match="built-in"):
        mnistlab.data.add("mnist", own_sources.npz)


def test_a_failed_import_leaves_nothing_in_the_store(store, own_sources, monkeypatch):
    def fail(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(own, "write_json", fail)  # after the arrays were written
    with pytest.raises(OSError):
        own.commit("half", {k: np.zeros((2, 8, 8) if "images" in k else 2, np.uint8 if "images" in k else np.int64)
                            for k in own.ARRAYS}, {"class_names": ["a", "b"]}, store)
    assert sorted(p.name for p in store.iterdir()) == ["fashion-mnist", "mnist"]


def test_predict_takes_folders_and_csv_files_and_skips_a_bad_file(trained_run, own_sources, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "mine" / "deeper"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(255 - own_sources.tx[i]).resize((84, 84)).save(folder / f"{i}.png")
    (tmp_path / "mine" / "notes.png").write_bytes(b"not a picture")
    code, out, err = run(capsys, "predict", trained_run, tmp_path / "mine", own_sources.test_csv,
                         "--output", "csv")
    assert code == 1 and "notes.png" in err and err.count("\n") == 1
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0] == ["file", "row", "class", "label", "probability"] and len(rows) == 1 + 3 + 100
    csv_rows = [r for r in rows[1:] if r[0] == str(own_sources.test_csv)]
    assert [int(r[1]) for r in csv_rows] == list(range(1, 101))
    assert np.mean([int(r[2]) for r in csv_rows] == own_sources.ty) > 0.85  # the rows are MNIST test digits
    submission = tmp_path / "submission.csv"
    code, out, err = run(capsys, "predict", trained_run, own_sources.test_csv, "--submission", submission)
    assert code == 0 and "wrote" in err
    lines = submission.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and lines[1].startswith("1,") and len(lines) == 101
    code, _, err = run(capsys, "predict", trained_run, folder, "--submission", submission)
    assert code == 2 and "exactly one CSV" in err


def test_a_run_on_data_the_store_lacks_or_holds_differently_says_so(trained_run, store, own_sources, tmp_path,
                                                                     capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    import mnistlab.data

    added = mnistlab.data.add("keras", own_sources.npz).info
    config["dataset"], config["data"]["fingerprint"] = "keras", added.fingerprint
    config["data"]["val_size"] = 50  # what a run on 600 images could spare
    (run_dir / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run_dir)]) == 0  # the same data: fine
    capsys.readouterr()
    shutil.rmtree(store / "keras")
    code, out, err = run(capsys, "evaluate", run_dir)
    assert code == 2 and out == "" and "lacks" in err and "mnistlab data add keras PATH" in err
    assert err.count("\n") == 1
    assert run(capsys, "data", "add", "keras", own_sources.idx, "--size", "32")[0] == 0  # other images, same name
    code, _, err = run(capsys, "evaluate", run_dir)
    assert code == 2 and "holds other images" in err and "--force" in err
