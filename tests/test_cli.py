"""The command line: exit codes, one-line errors, JSON-only stdout with --json."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnistlab.cli import main
from mnistlab.data.datasets import load_split


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    names = {m["name"] for m in json.loads(out)}
    assert {"simple", "deeper", "resnet"} <= names


def test_train_without_arch_is_a_usage_error(capsys):
    code, out, err = run(capsys, "train")
    assert code == 2 and out == ""
    assert "--arch is required" in err and len(err.strip().splitlines()) == 1


def test_unknown_arch_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--arch", "vgg"])
    assert exc.value.code == 2


def test_evaluate_unknown_path(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", str(tmp_path / "nope"))
    assert code == 2 and "no such run directory" in err


def test_evaluate_json_prints_only_json(capsys, trained_run):
    code, out, _ = run(capsys, "evaluate", str(trained_run), "--json")
    assert code == 0
    assert json.loads(out)["n_samples"] == 10_000


def test_existing_out_needs_force(capsys, trained_run):
    code, _, err = run(capsys, "train", "--arch", "simple", "--out", str(trained_run))
    assert code == 2 and "--force" in err


def _paper_digits(tmp_path, n=10):
    """MNIST test digits drawn as dark ink on white paper at 4× size, as a user would give them."""
    images, labels = load_split("mnist", "test")
    paths = []
    for i in range(n):
        img = Image.fromarray(255 - images[i].numpy()).resize((112, 112), Image.Resampling.BILINEAR)
        path = tmp_path / f"digit{i}.png"
        img.save(path)
        paths.append(str(path))
    return paths, labels[:n].numpy()


def test_predict_json_classifies_user_images(capsys, trained_run, tmp_path):
    paths, labels = _paper_digits(tmp_path)
    code, out, _ = run(capsys, "predict", str(trained_run), *paths, "--json")
    assert code == 0
    results = json.loads(out)
    assert [r["file"] for r in results] == paths
    assert all(len(r["probabilities"]) == 10 and abs(sum(r["probabilities"]) - 1) < 1e-3 for r in results)
    assert (np.array([r["digit"] for r in results]) == labels).sum() >= 8


@pytest.mark.parametrize("content", [None, b"this is not an image"])
def test_predict_bad_file_exit_2(capsys, trained_run, tmp_path, content):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "predict", str(trained_run), str(path))
    assert code == 2 and out == "" and str(path) in err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mnistlab", "evaluate", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not a run directory" in proc.stderr
