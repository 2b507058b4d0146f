"""Hostile data: oversized, truncated and slow downloads from a local HTTP server, gzip bombs, a file
changed after it was verified, and two processes fetching into one cache at once. No network."""

from __future__ import annotations

import gzip
import http.server
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from mnistlab.data import idx, sources, store
from mnistlab.errors import DataError
from test_store import KEYS, RAW, cache, idx_bytes, quiet, toy  # noqa: F401  (toy: autouse fixture)

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


class Server:
    """http.server on 127.0.0.1 in a thread; ``routes[path] = handler(request)`` answers each GET."""

    def __init__(self):
        self.routes, self.hits = {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.hits.append(self.path)
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                else:
                    try:
                        route(self)
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
                        pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def serve(body: bytes, *, length: int | None = None, chunk: int = 1 << 16, pause: float = 0.0):
    def handler(request):
        request.send_response(200)
        request.send_header("Content-Length", str(len(body) if length is None else length))
        request.end_headers()
        for i in range(0, len(body), chunk):
            request.wfile.write(body[i:i + chunk])
            request.wfile.flush()
            time.sleep(pause)
    return handler


def serve_all(server, prefix="", **kw):
    for name, raw in RAW.items():
        server.routes[f"/{prefix}{name}.gz"] = serve(gzip.compress(raw), **kw)


def test_good_mirror_over_http(server, tmp_path):
    serve_all(server)
    paths = store.locate("toy", sources=[sources.MirrorSource(server.url)], offline=False, progress=quiet)
    assert paths["train-images"].read_bytes() == RAW["train-images-idx3-ubyte"]


def test_oversized_download_is_cut_off_and_the_next_mirror_used(server, tmp_path):
    serve_all(server, "good/")
    big = 32 * 2**20  # far more than the toy file may be; no Content-Length, so only the cap stops it
    def endless(request):
        request.send_response(200)
        request.end_headers()
        for _ in range(big // 65536):
            request.wfile.write(b"\x1f\x8b" + bytes(65534))
    for name in RAW:
        server.routes[f"/big/{name}.gz"] = endless
    tracemalloc.start()
    paths = store.locate("toy", sources=[sources.MirrorSource(server.url + "big/"),
                                         sources.MirrorSource(server.url + "good/")], offline=False, progress=quiet)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20, f"read {peak} bytes of an oversized download"
    assert paths["test-labels"].read_bytes() == RAW["t10k-labels-idx1-ubyte"]


def test_announced_oversize_is_refused_before_reading(server):
    server.routes["/x.gz"] = serve(b"tiny", length=10**12)
    with pytest.raises(ValueError, match="announces 1000000000000 bytes"):
        sources.MirrorSource(server.url).fetch("x", None, max_bytes=1000)


def test_truncated_download_falls_through_with_the_reason(server):
    for name, raw in RAW.items():
        body = gzip.compress(raw)
        server.routes[f"/{name}.gz"] = serve(body[: len(body) // 2], length=len(body))
    with pytest.raises(DataError, match="ended after") as err:
        store.locate("toy", sources=[sources.MirrorSource(server.url)], offline=False, progress=quiet)
    assert "\n" not in str(err.value)
    assert not list(store.cache_dir("toy").glob("*"))  # nothing half-written was kept


def test_slow_download_hits_the_overall_deadline(server):
    body = gzip.compress(RAW["train-images-idx3-ubyte"])
    server.routes["/slow.gz"] = serve(body, chunk=4, pause=0.05)  # each read is quick; the whole is not
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="longer than 0.3 s"):
        sources.MirrorSource(server.url, deadline=0.3).fetch("slow", None)
    assert time.monotonic() - started < 5


def bomb(declared: tuple[int, ...], zeros: int) -> bytes:
    """A small gzip whose IDX header declares ``declared`` and whose payload inflates to ``zeros`` bytes."""
    header = idx_bytes(np.zeros((0,) * len(declared), np.uint8))[:4] + b"".join(d.to_bytes(4, "big") for d in declared)
    return gzip.compress(header + bytes(zeros), compresslevel=9)


@pytest.mark.parametrize("declared, zeros, message", [
    ((6, 4, 4), 200 * 2**20, "trailing bytes"),         # the header is honest, the stream is not
    ((60000, 28, 28), 200 * 2**20, "header declares"),  # the header itself is too big for the file
])
def test_gzip_bomb_is_stopped_after_a_chunk(tmp_path, declared, zeros, message):
    path = tmp_path / "toy" / "train-images-idx3-ubyte.gz"
    path.parent.mkdir()
    path.write_bytes(bomb(declared, zeros))
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    with pytest.raises(DataError, match=message):
        store.locate("toy", tmp_path, offline=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20, f"inflated {peak} bytes of a gzip bomb"


def test_generic_reader_caps_gzip_without_a_spec():
    data = bomb((10**6, 28, 28), 64 * 2**20)  # declares 784 MB: over MAX_IDX_BYTES
    with pytest.raises(DataError, match="header declares"):
        idx.read_idx(data)


def test_raw_file_size_is_checked_before_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(RAW["t10k-images-idx3-ubyte"] + bytes(10 * 2**20))  # header says 64 bytes of pixels
    reads = []
    real_open = open

    def spy_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if str(file) == str(path):
            real_read = handle.read
            handle.read = lambda n=-1: reads.append(n) or real_read(n)  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr("builtins.open", spy_open)
    with pytest.raises(DataError, match="trailing bytes"):
        idx.read_idx(path)
    assert reads == [16], f"read more than the header: {reads}"


def test_bytes_parsed_are_the_bytes_hashed(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    path = folder / "train-labels-idx1-ubyte"
    path.write_bytes(RAW["train-labels-idx1-ubyte"])
    assert store.read_verified("toy", "train-labels", path) == RAW["train-labels-idx1-ubyte"]
    swapped = bytearray(RAW["train-labels-idx1-ubyte"])
    swapped[-1] ^= 1  # the file changes after locate() verified it
    path.write_bytes(bytes(swapped))
    with pytest.raises(DataError, match="changed since it was verified"):
        store.read_verified("toy", "train-labels", path)


FETCH = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
    from mnistlab.data import registry, sources, store
    from test_store import KEYS, RAW
    specs = tuple(store.FileSpec(KEYS[n], n, len(r), hashlib.sha256(r).hexdigest()) for n, r in RAW.items())
    registry.DATASETS["toy"] = registry.DatasetInfo("toy", tuple("0123456789"), 0.5, 0.25, specs)
    paths = store.locate("toy", sources=[sources.MirrorSource({url!r})], offline=False, progress=lambda *a: None)
    print(sorted(str(p) for p in paths.values()))
""")


def test_two_processes_fetching_at_once_download_each_file_once(server, tmp_path):
    serve_all(server, pause=0.2, chunk=16)  # slow enough that the two fetches overlap
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PATH": "/usr/bin:/bin"}
    # A corrupt cached copy both processes see: only one may delete it and fetch it again.
    folder = cache(tmp_path)
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte").write_bytes(b"junk")
    script = FETCH.format(src=str(SRC), tests=str(Path(__file__).parent), url=server.url)
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0] == outs[1][0]
    assert sorted(server.hits) == sorted(f"/{name}.gz" for name in RAW), server.hits  # once each
    for name, raw in RAW.items():
        assert (folder / name).read_bytes() == raw
    assert sorted(p.name for p in folder.iterdir()) == sorted(RAW)  # no temp files left behind
