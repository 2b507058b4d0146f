"""export/preprocess.py: the same arrays as mnistlab's preprocessing, and the docs' client gives
the predictions of `mnistlab predict` on digits drawn as people send them."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from mnistlab.data.images import ImageRejected
from mnistlab.data.preprocess import file_to_input
from mnistlab.export.preprocess_file import ALLOWED_IMPORTS, PREPROCESS_FILE, write_preprocess
from mnistlab.runconfig import DataFacts, RunConfig

pytest_plugins = ["deploy_fixtures"]  # the session's exported run, shared with the other deploy tests
DOCS = Path(__file__).parents[1] / "docs" / "deploy.md"


def _config(dataset: str) -> RunConfig:
    facts = DataFacts(class_names=tuple(str(i) for i in range(10)), num_classes=10, mean=0.5, std=0.25,
                      image_size=28, in_channels=1)
    return RunConfig(kind="train", framework="torch", dataset=dataset, arch="simple", data=facts)


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_preprocess_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _styles(digit28: np.ndarray, folder: Path, stem: str) -> list[Path]:
    """One MNIST digit (white on black) drawn as people supply it, each style a file."""
    ink = Image.fromarray(255 - digit28)  # dark ink on white
    paper = ink.resize((140, 140), Image.Resampling.BILINEAR).point(lambda v: 40 + v * 195 // 255)  # gray paper
    page = Image.new("L", (600, 400), 232)
    page.paste(ink.resize((90, 90), Image.Resampling.BILINEAR).point(lambda v: min(v, 232)), (40, 250))
    thick = Image.fromarray(digit28).resize((112, 112), Image.Resampling.BILINEAR).filter(ImageFilter.MaxFilter(7))
    thick = Image.fromarray(255 - np.asarray(thick)).convert("RGB")
    files = {"paper.png": paper, "off-centre.png": page, "thick-pen.png": thick, "photo.jpg": paper.convert("RGB")}
    paths = []
    for name, img in files.items():
        path = folder / f"{stem}-{name}"
        img.save(path, quality=70) if name.endswith(".jpg") else img.save(path)
        paths.append(path)
    return paths


def test_the_file_imports_only_numpy_and_pillow(tmp_path):
    path = write_preprocess(tmp_path / PREPROCESS_FILE, _config("mnist"))
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == set(ALLOWED_IMPORTS)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_to_input_gives_mnistlabs_arrays(dataset, tmp_path, data_dir):
    from mnistlab.data.datasets import load_split

    exported = _import(write_preprocess(tmp_path / PREPROCESS_FILE, _config(dataset)))
    images, _ = load_split(dataset, "test", data_dir=str(data_dir))
    paths = [p for i in range(3) for p in _styles(images[i].numpy(), tmp_path, f"{dataset}-{i}")]
    rgba = Image.new("RGBA", (60, 50), (0, 0, 0, 0))
    rgba.paste((20, 20, 20, 255), (20, 10, 35, 40))  # a dark bar on a transparent background
    rgba.save(tmp_path / "transparent.png")
    paths.append(tmp_path / "transparent.png")

    got = exported.to_input([str(p) for p in paths])
    ours = np.stack([file_to_input(p, dataset)[0] for p in paths]).astype(np.float32)[:, None] / 255.0
    assert got.dtype == np.float32 and got.shape == (len(paths), 1, 28, 28)
    np.testing.assert_array_equal(got, ours)
    one = exported.to_input(Image.open(paths[0]))  # a PIL image in, a batch of one out
    np.testing.assert_array_equal(one, ours[:1])

    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="no ink"):
        exported.to_input(str(tmp_path / "blank.png"))
    with pytest.raises(ImageRejected, match="no ink"):
        file_to_input(tmp_path / "blank.png", dataset)


def _docs_client() -> str:
    text = DOCS.read_text()
    block = re.search(r"<!-- onnx-client:[^\n]*-->\n```python\n(.*?)```", text, re.DOTALL)
    assert block, "docs/deploy.md lost its marked ONNX client block"
    return block.group(1)


# Runs a script with mnistlab and torch unimportable: the client must need neither.
_BLOCKED_RUNNER = """
import runpy, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mnistlab", "torch"):
            raise ImportError(f"{name} is blocked: the client must not need it")
sys.meta_path.insert(0, Blocker())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_docs_client_predicts_what_mnistlab_predict_does(exported_run, data_dir, tmp_path):
    pytest.importorskip("onnxruntime")  # the deploy extra
    from mnistlab import cli, runs
    from mnistlab.data.datasets import load_split

    images, labels = load_split("mnist", "test", data_dir=str(data_dir))
    # For each digit, the first test image the run classifies right as it is (the one-epoch model
    # misses some): a redrawn copy should then keep its label.
    logits, _ = runs.load_predictions(exported_run / runs.PREDICTIONS)
    right = logits.argmax(1) == labels.numpy()
    picks = [int(np.flatnonzero((labels.numpy() == d) & right)[0]) for d in (2, 3, 7)]
    pictures = [p for i in picks for p in _styles(images[i].numpy(), tmp_path, f"digit-{i}")]

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["predict", str(exported_run), *map(str, pictures), "--json"]) == 0
    expected = [r["label"] for r in json.loads(stdout.getvalue())]

    client = tmp_path / "client.py"
    client.write_text(_docs_client())
    export_dir = exported_run / "export"
    proc = subprocess.run([sys.executable, "-c", _BLOCKED_RUNNER, str(client), str(export_dir), *map(str, pictures)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [line.rsplit(" ", 1)[1] for line in proc.stdout.splitlines()]
    assert got == expected
    # The pipeline is what makes them right: most of these redrawn digits keep their label.
    truth = [str(int(labels[i])) for i in picks for _ in range(4)]
    assert sum(g == t for g, t in zip(got, truth)) >= 10, list(zip(got, truth))
