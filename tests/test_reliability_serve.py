"""The service under faults (issue 22): a worst-case picture's memory is bounded and so is the
number decoded at once; random methods and paths cannot grow /metrics; no header makes a 5xx; a
client that hangs up is counted as such in one log line; a port in use is one line, exit 2."""

from __future__ import annotations

import asyncio
import io
import logging
import random
import socket
import string
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from serve_helpers import make_client, png

pytest_plugins = ["serve_fixtures"]

WORST_SIDE = 4096  # the largest picture the service accepts (mnistlab.data.images.MAX_SIDE)


def worst_case_png() -> bytes:
    """A 22 KB PNG of 4096 × 4096 whose every pixel but a thin margin of paper is ink."""
    page = Image.new("L", (WORST_SIDE, WORST_SIDE), 255)
    page.paste(0, (8, 8, WORST_SIDE - 8, WORST_SIDE - 8))
    buf = io.BytesIO()
    page.save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_preprocessing_a_worst_case_picture_stays_within_a_memory_bound(dataset):
    from mnistlab.data.preprocess import image_to_input

    data = worst_case_png()
    tracemalloc.start()  # numpy's arrays are traced; the bound is on the arrays of the pipeline
    try:
        out, _ = image_to_input(data, dataset)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (28, 28) and out.max() > 0
    assert peak < 48e6, f"preprocessing a 4096×4096 picture peaked at {peak / 1e6:.0f} MB of arrays"


@pytest.mark.slow  # pictures of 3000 and 4096 pixels, encoded and decoded: ~5 s
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("fmt, side, copy_side", [("PNG", 3000, 1000), ("JPEG", 4096, 1024)])  # JPEG: decoded at 1/4
def test_a_large_picture_gives_what_its_copy_at_the_working_size_gives(data_dir, dataset, fmt, side, copy_side):
    """A picture over 1024 pixels is reduced before its arrays are made: its 28×28 is that of its
    copy at the reduced size (a PNG reduced by 3, a JPEG decoded at a quarter of its size)."""
    from mnistlab.data.datasets import load_split
    from mnistlab.data.preprocess import image_to_input

    for item in load_split(dataset, "test", data_dir=str(data_dir))[0][:4].numpy():
        picture = Image.fromarray(255 - item)
        large = png(picture.resize((side, side), Image.Resampling.BILINEAR), fmt)
        copy = png(picture.resize((copy_side, copy_side), Image.Resampling.BILINEAR))
        diff = np.abs(image_to_input(large, dataset)[0].astype(int) - image_to_input(copy, dataset)[0].astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 16, (diff.mean(), diff.max())


def test_decodes_at_once_are_bounded_and_an_excess_request_gets_503_with_retry_after(monkeypatch):
    from mnistlab.serve import v1

    entered, release = threading.Event(), threading.Event()
    decode = v1.image_bytes_to_images

    def slow_first_decode(data, name, dataset):
        if not entered.is_set():  # only the first request is held; others pass straight through
            entered.set()
            release.wait(60)
        return decode(data, name, dataset)

    monkeypatch.setattr(v1, "image_bytes_to_images", slow_first_decode)
    picture = png(np.pad(np.full((10, 10), 255, np.uint8), 9))
    headers = {"content-type": "image/png"}
    with make_client(max_decodes=1, decode_wait_s=0.2) as client:
        first: list = []
        held = threading.Thread(target=lambda: first.append(client.post("/v1/predict", content=picture, headers=headers)))
        held.start()
        try:
            assert entered.wait(60), "the first request never reached its decode"
            busy = client.post("/v1/predict", content=picture, headers=headers)
        finally:
            release.set()
            held.join(60)
        assert busy.status_code == 503 and busy.headers["retry-after"].isdigit(), busy.text
        assert "decod" in busy.json()["error"]
        assert first[0].status_code == 200
        assert client.post("/v1/predict", content=picture, headers=headers).status_code == 200  # the turn was given back


def test_random_methods_and_paths_do_not_grow_the_metrics():
    client = make_client()
    rng = random.Random(0)
    for _ in range(200):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
        path = "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=rng.randint(1, 30)))
        client.request(rng.choice([method, "GET", "POST"]), path)
    text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(series) < 60, f"{len(series)} series after 200 random requests"
    assert 'method="other"' in text


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9\xb2", b"9" * 5000])  # "²", "¹²" as latin-1: str.isdigit() says yes
def test_a_header_that_is_not_a_plain_number_is_a_400_not_a_500(value):
    body = b'{"inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8", "data": [0]}]}'
    sent = _call(make_client().app, {"inference-header-content-length": value, "content-length": str(len(body)).encode()},
                 [{"type": "http.request", "body": body, "more_body": False}])
    assert sent[0]["status"] == 400 and b"inference-header-content-length" in sent[1]["body"], sent


def test_a_content_length_of_thousands_of_digits_is_a_4xx():
    """The guard reads Content-Length before the server does (HTTP servers refuse it too; a test client does not)."""
    app = make_client().app
    sent = _call(app, {"content-length": b"9" * 5000}, [{"type": "http.request", "body": b"", "more_body": False}])
    assert 400 <= sent[0]["status"] < 500


def _call(app, headers: dict[str, bytes], messages: list[dict]) -> list[dict]:
    """One ASGI request to ``/v2/models/fake/infer`` whose body arrives as ``messages``; what the app sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v2/models/fake/infer", "raw_path": b"/v2/models/fake/infer", "query_string": b"",
             "root_path": "", "headers": [(k.encode(), v) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    incoming, sent = list(messages), []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_that_hangs_up_mid_body_is_counted_as_such_in_one_log_line(caplog):
    client = make_client()
    half = [{"type": "http.request", "body": b'{"inputs": [', "more_body": True}, {"type": "http.disconnect"}]
    with caplog.at_level(logging.INFO):
        _call(client.app, {"content-type": b"application/json", "content-length": b"1000"}, half)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and records[0].exc_info is None and "closed" in records[0].getMessage()
    metrics = client.get("/metrics").text
    assert 'route="/v2/models/{name}/infer",status="499"} 1' in metrics
    assert 'status="500"' not in metrics


def test_a_port_in_use_is_one_line_naming_the_port_and_the_fix_before_anything_loads(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "mnistlab", "serve", str(tmp_path / "no-such-run"), "--port", str(port)],
                              capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert len(lines) == 1 and str(port) in lines[0] and "--port" in lines[0], proc.stderr
    assert "no-such-run" not in lines[0] and "serving" not in proc.stderr  # checked before the run is looked at
