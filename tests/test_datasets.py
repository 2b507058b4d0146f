"""Data set registry, stratified splits and normalisation; real MNIST/Fashion-MNIST when available."""

from pathlib import Path

import pytest
import torch

from mnistlab.data.datasets import (
    DATASETS,
    get_dataset_info,
    list_datasets,
    load_split,
    load_train_val,
    normalize,
    stratified_split,
    summary,
)
from mnistlab.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared data copy not present")
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(SHARED))
    monkeypatch.setenv("MNISTLAB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_registry():
    assert list_datasets() == ["fashion-mnist", "mnist"]
    mnist, fashion = get_dataset_info("mnist"), get_dataset_info("fashion-mnist")
    assert (mnist.mean, mnist.std, fashion.mean, fashion.std) == (0.1307, 0.3081, 0.2860, 0.3530)
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[-1] == "Ankle boot"
    assert all(len(d.class_names) == d.num_classes == 10 and d.image_size == 28 for d in DATASETS.values())
    with pytest.raises(UserError, match="choose one of: fashion-mnist, mnist"):
        get_dataset_info("cifar10")


def imbalanced_labels() -> torch.Tensor:
    return torch.cat([torch.full((n,), c) for c, n in enumerate([500, 300, 150, 50])])[torch.randperm(1000)]


def test_stratified_split_sizes_proportions_and_disjointness():
    labels = imbalanced_labels()
    train, val = stratified_split(labels, val_size=101, seed=3)
    assert len(val) == 101 and len(train) == 899
    assert torch.cat([train, val]).sort().values.equal(torch.arange(1000))  # disjoint and complete
    expected = torch.tensor([500, 300, 150, 50]) * 101 / 1000
    assert (labels[val].bincount() - expected).abs().max() < 1  # largest-remainder allocation


def test_stratified_split_is_seeded():
    labels = imbalanced_labels()
    a, b, c = (stratified_split(labels, 100, seed=s)[1] for s in (0, 0, 1))
    assert a.equal(b) and not a.equal(c)


@pytest.mark.parametrize("val_size", [0, -1, 1000, 5000])
def test_stratified_split_rejects_bad_sizes(val_size):
    with pytest.raises(UserError, match="val_size must be between 1 and 999"):
        stratified_split(imbalanced_labels(), val_size)


def test_normalize():
    info = get_dataset_info("mnist")
    x = torch.tensor([[[0, 255], [0, 255]]], dtype=torch.uint8)
    out = normalize(x, info.mean, info.std)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out[0, 0, 0, 0].item() == pytest.approx(-0.1307 / 0.3081)
    assert out[0, 0, 0, 1].item() == pytest.approx((1 - 0.1307) / 0.3081)
    assert normalize(x.unsqueeze(1), info.mean, info.std).equal(out)
    with pytest.raises(TypeError):
        normalize(out, info.mean, info.std)


@needs_data
def test_mnist_splits(shared_data):
    x, y = load_split("mnist", "train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert y.bincount().tolist() == MNIST_TRAIN_COUNTS
    x_test, y_test = load_split("mnist", "test")
    assert x_test.shape == (10000, 28, 28) and y_test.bincount().tolist() == MNIST_TEST_COUNTS
    assert load_split("mnist", "train")[0] is x, "each split is read once per process"
    with pytest.raises(UserError, match="unknown split 'val'"):
        load_split("mnist", "val")


@needs_data
def test_fashion_mnist_test_split(shared_data):
    x, y = load_split("fashion-mnist", "test")
    assert x.shape == (10000, 28, 28) and y.bincount().tolist() == [1000] * 10


@needs_data
def test_load_train_val(shared_data):
    data = load_train_val("mnist", val_size=5000, seed=0)
    assert data.train_x.shape == (55000, 28, 28) and data.val_x.shape == (5000, 28, 28)
    assert set(data.train_indices.tolist()).isdisjoint(data.val_indices.tolist())
    expected = torch.tensor(MNIST_TRAIN_COUNTS) * 5000 / 60000
    assert (data.val_y.bincount() - expected).abs().max() < 1
    full_x, full_y = load_split("mnist", "train")
    assert data.val_x.equal(full_x[data.val_indices]) and data.val_y.equal(full_y[data.val_indices])

    small = load_train_val("mnist", val_size=5000, seed=0, train_subset=1000)
    assert small.val_indices.equal(data.val_indices), "the val split must not depend on train_subset"
    assert len(small.train_y) == 1000 and set(small.train_indices.tolist()) <= set(data.train_indices.tolist())
    assert small.train_y.bincount().min() >= 85  # stratified: ~100 per class, not luck of the draw
    assert load_train_val("mnist", 5000, 0, train_subset=1000).train_indices.equal(small.train_indices)
    with pytest.raises(UserError, match="train_subset must be between 1 and 55000"):
        load_train_val("mnist", train_subset=60000)


@needs_data
def test_summary(shared_data):
    out = summary("mnist")
    assert out["train"]["class_counts"] == MNIST_TRAIN_COUNTS and out["test"]["count"] == 10000
    assert out["measured_mean"] == pytest.approx(0.1307, abs=1e-4)
    assert out["measured_std"] == pytest.approx(0.3081, abs=1e-4)


def test_one_registry_entry_holds_every_fact():
    from mnistlab.data import registry, sources, store

    for name in list_datasets():
        entry = registry.get(name)
        assert get_dataset_info(name) is entry and DATASETS[name] is entry
        assert [s.key for s in entry.files] == ["train-images", "train-labels", "test-images", "test-labels"]
        assert store.specs(name) == entry.files and all(len(s.sha256) == 64 for s in entry.files)
        assert [s.name for s in sources.default_sources(name)][0] == entry.sources[0]
        assert len(entry.class_names) == entry.num_classes


def test_data_modules_import_one_way():
    """registry imports only the typed facts, the added data sets and errors (and they nothing of the floors
    above); store never imports datasets, not even in a function."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / "data"

    def imported(module: str) -> set[str]:
        tree = ast.parse((folder / f"{module}.py").read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        return {n for n in names if n.startswith("mnistlab")}

    low = ("mnistlab.errors", "mnistlab.fileio", "mnistlab.data.own", "mnistlab.data.info", "mnistlab.data.places")
    for module in ("registry", "own", "info", "places"):
        for name in imported(module) - {"mnistlab.data"}:  # `from mnistlab.data import own` names the package too
            assert any(name == m or name.startswith(m + ".") for m in low), (module, name)
    assert "mnistlab.data.info" in imported("registry") and not imported("info")
    assert not any("datasets" in n for n in imported("store") | imported("sources") | imported("idx"))
