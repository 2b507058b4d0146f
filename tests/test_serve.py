"""The service's own API in process (FastAPI's TestClient): every endpoint, real digits, and every
bad-input case of issue 10's Hardening section answered 4xx with a one-line reason."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from serve_helpers import make_client, paper_digit, png

pytest_plugins = ["serve_fixtures"]


def test_probes_model_and_schema(real_client, trained_run):
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready"):
        assert real_client.get(path).status_code == 200
    info = real_client.get("/v1/model").json()
    assert info["name"] == trained_run.name and info["arch"] == "simple" and info["framework"] == "torch"
    assert info["dataset"] == "mnist" and info["params"] == 93_322 and 0.8 < info["test_accuracy"] <= 1
    assert info["class_names"] == [str(k) for k in range(10)] and info["trained"]
    assert str(trained_run.parent) not in json.dumps(info)  # no server paths leak
    paths = real_client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/v1/model", "/v1/predict", "/metrics", "/v2/models/{name}/infer"} <= set(paths)


def test_page_and_its_files_are_served_without_external_urls(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
    assert "https://" not in page.text and "http://" not in page.text


def test_json_pixels_single_nested_flat_and_batch_classify_real_digits(real_client, test_digits):
    x, y = test_digits
    for pixels in (x[0].tolist(), x[0].ravel().tolist()):
        r = real_client.post("/v1/predict", json={"pixels": pixels})
        body = r.json()
        assert r.status_code == 200 and body["digit"] == y[0] and body["label"] == str(y[0])
        assert abs(sum(body["probabilities"]) - 1) < 1e-4 and len(body["probabilities"]) == 10
        assert body["top_k"][0]["digit"] == body["digit"] and len(body["top_k"]) == 3 and body["latency_ms"] > 0
    batch = real_client.post("/v1/predict", json={"pixels": x[:32].tolist()}).json()["predictions"]
    assert (np.array([p["digit"] for p in batch]) == y[:32]).mean() >= 0.8


def test_image_upload_multipart_and_raw_body_use_predicts_preprocessing(real_client, test_digits, trained_run, tmp_path):
    from mnistlab.predict import predict_files

    x, y = test_digits
    data = paper_digit(x[0])
    (tmp_path / "d.png").write_bytes(data)
    expected = predict_files(trained_run, [tmp_path / "d.png"])[0]
    multipart = real_client.post("/v1/predict?include_input=true", files={"file": ("d.png", data, "image/png")}).json()
    raw = real_client.post("/v1/predict", content=data, headers={"content-type": "image/png"}).json()
    for body in (multipart, raw):
        assert body["digit"] == expected["digit"] == y[0]
        np.testing.assert_allclose(body["probabilities"], expected["probabilities"], atol=1e-5)
    seen = np.array(multipart["input"])
    assert seen.shape == (28, 28) and seen.max() == 255 and seen[0].max() == 0  # white on black, centred


def test_explain_adds_a_gradcam_png_for_torch_runs(real_client, test_digits):
    x, _ = test_digits
    body = real_client.post("/v1/predict?explain=true", json={"pixels": x[1].tolist()}).json()
    cam = Image.open(io.BytesIO(base64.b64decode(body["gradcam_png"])))
    assert cam.size == (28, 28) and np.asarray(cam).max() == 255


def test_animated_upload_answers_with_a_warning(client):
    first = Image.new("L", (60, 60), 255)
    first.paste(0, (26, 8, 34, 52))
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[Image.new("L", (60, 60), 0)])
    body = client.post("/v1/predict", files={"file": ("a.gif", buf.getvalue(), "image/gif")}).json()
    assert "first frame" in body["warnings"][0]


BAD_JSON = {
    "missing field": ({"pictures": [0] * 784}, "pixels"),
    "wrong length": ({"pixels": [0] * 783}, "pixels"),
    "wrong row length": ({"pixels": [[0] * 27] * 28}, "pixels"),
    "ragged": ({"pixels": [[0] * 28] * 27 + [[0] * 29]}, "pixels"),
    "strings": ({"pixels": ["0"] * 784}, "pixels[0]"),
    "nulls": ({"pixels": [None] * 784}, "pixels[0]"),
    "booleans": ({"pixels": [0] * 783 + [True]}, "pixels[783]"),
    "negative": ({"pixels": [0] * 10 + [-1] + [0] * 773}, "pixels[10]"),
    "huge": ({"pixels": [1e300] * 784}, "pixels[0]"),
    "too deep": ({"pixels": [[[[[[0]]]]]]}, "pixels"),
    "not a list": ({"pixels": 7}, "pixels"),
    "empty": ({"pixels": []}, "pixels"),
    "object": ({"pixels": {"a": 1}}, "pixels"),
    "not an object": ([0] * 784, "pixels"),
}


@pytest.mark.parametrize("case", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_every_wrong_json_shape_or_value_is_422_naming_the_field(client, case):
    body, field = case
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    assert message.startswith(field) and "\n" not in message


@pytest.mark.parametrize("body,ctype", [(b"{not json", "application/json"), (b"", "application/json"),
                                        (b"[" * 100_000, "application/json"), (b'{"pixels": NaN}', None),
                                        (b"pixels=1", "application/x-www-form-urlencoded"), (b"hello", "text/plain")],
                         ids=["not json", "empty", "deep brackets", "NaN", "form", "text"])
def test_not_json_and_wrong_content_type_are_422(client, body, ctype):
    r = client.post("/v1/predict", content=body, headers={"content-type": ctype} if ctype else {})
    assert r.status_code == 422 and r.json()["error"].split(":")[0] in ("body", "pixels", "content-type")


def test_json_without_content_type_is_accepted(client):
    r = client.post("/v1/predict", content=json.dumps({"pixels": [0] * 783 + [255]}))
    assert r.status_code == 200


def test_batch_over_the_limit_is_413_and_at_the_limit_is_served(client):
    ok = client.post("/v1/predict", content=json.dumps({"pixels": [[0] * 784] * 256}, separators=(",", ":")))
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 256
    r = client.post("/v1/predict", json={"pixels": [[0] * 784] * 257})
    assert r.status_code == 413 and "257" in r.json()["error"]


def _bomb() -> bytes:
    from test_images import png_claiming

    return png_claiming(60_000, 60_000)


UPLOADS = {
    "not an image": (b"hello, world", "image/png", 415),
    "truncated png": (png(np.full((64, 64), 200, np.uint8))[:60], "image/png", 415),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml", 415),
    "svg disguised": (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/png", 415),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "application/postscript", 415),
    "eps disguised": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "image/png", 415),
    "bomb": (_bomb(), "image/png", 413),
    "blank": (png(np.full((64, 64), 255, np.uint8)), "image/png", 422),
}


@pytest.mark.parametrize("case", UPLOADS.values(), ids=UPLOADS.keys())
@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_bad_uploads_are_415_413_or_422_with_one_line(client, case, how):
    data, ctype, status = case
    if how == "raw":
        r = client.post("/v1/predict", content=data, headers={"content-type": ctype})
    else:
        r = client.post("/v1/predict", files={"file": ("upload", data, ctype)})
    if ctype == "application/postscript" and how == "raw":
        status = 415
    assert r.status_code in ((status, 422) if status == 415 else (status,)), r.text
    assert "\n" not in r.json()["error"]
    assert client.get("/healthz").status_code == 200  # still up


def test_multipart_without_the_file_field_is_422(client):
    r = client.post("/v1/predict", files={"picture": ("a.png", png(np.zeros((9, 9), np.uint8)), "image/png")})
    assert r.status_code == 422 and r.json()["error"].startswith("file")


def test_bad_query_parameter_is_422(client):
    r = client.post("/v1/predict?explain=perhaps", json={"pixels": [0] * 784})
    assert r.status_code == 422 and r.json()["error"].startswith("explain")


def test_concurrent_requests_get_their_own_answers(real_client, test_digits):
    x, _ = test_digits
    singles = [real_client.post("/v1/predict", json={"pixels": x[i].tolist()}).json()["probabilities"] for i in range(16)]
    batch = real_client.post("/v1/predict", json={"pixels": x[:16].tolist()}).json()["predictions"]

    def one(i):
        if i % 2:
            return ("batch", real_client.post("/v1/predict", json={"pixels": x[:16].tolist()}).json()["predictions"])
        return (i % 16, real_client.post("/v1/predict", json={"pixels": x[i % 16].tolist()}).json()["probabilities"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    for key, got in results:
        if key == "batch":
            np.testing.assert_allclose([p["probabilities"] for p in got], [p["probabilities"] for p in batch], atol=1e-5)
        else:
            np.testing.assert_allclose(got, singles[key], atol=1e-5)


def test_metrics_count_requests_errors_and_latency():
    client = make_client()
    client.post("/v1/predict", json={"pixels": [0] * 784})
    client.post("/v1/predict", json={"pixels": "no"})
    text = client.get("/metrics").text
    assert 'mnistlab_http_requests_total{method="POST",route="/v1/predict",status="200"} 1' in text
    assert 'mnistlab_http_errors_total{status="422"} 1' in text
    assert 'mnistlab_http_request_duration_seconds_bucket{route="/v1/predict",le="+Inf"} 2' in text
    assert "mnistlab_images_classified_total 1" in text
    import re

    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? [0-9.e+-]+$')
    assert all(sample.match(line) for line in text.splitlines() if not line.startswith("#")), text


def test_micro_batching_keeps_each_requests_rows_apart():
    import asyncio

    from mnistlab.serve.compute import MicroBatcher
    from serve_helpers import fake_logits

    calls = []

    def model(x):
        calls.append(len(x))
        return fake_logits(x)

    batcher = MicroBatcher(model)
    requests = [np.full((1 + i % 3, 28, 28), 10 * i, np.uint8) for i in range(12)]

    async def all_at_once():
        return await asyncio.gather(*(batcher(r) for r in requests))

    answers = asyncio.run(all_at_once())
    assert len(calls) < len(requests)  # they were classified together
    for r, a in zip(requests, answers):
        np.testing.assert_array_equal(a, fake_logits(r))


def test_micro_batcher_keeps_event_loops_apart():
    """Two event loops in two threads share one batcher (a test client without a portal does this).
    Loop B's request arrives while loop A's is waiting for its flush: B must still be answered on
    its own loop. Completing B's future from A's thread left B asleep forever, and CI hung."""
    import asyncio
    import threading

    from mnistlab.serve.compute import MicroBatcher

    batcher = MicroBatcher(lambda x: x * 2)
    a_queued, b_queued, answers = threading.Event(), threading.Event(), {}

    async def request(name, value, queued, wait_for=None):
        task = asyncio.ensure_future(batcher(np.full((1, 3), value)))
        await asyncio.sleep(0)  # the task has queued its request; the flush has not run yet
        queued.set()
        if wait_for is not None:
            wait_for.wait(10)  # hold this loop (and its flush) until the other loop has queued
        answers[name] = int((await task)[0, 0])

    threads = [threading.Thread(target=lambda: asyncio.run(request("a", 1, a_queued, b_queued)), daemon=True),
               threading.Thread(target=lambda: a_queued.wait(10) and asyncio.run(request("b", 5, b_queued)),
                                daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "a request was never answered"
    assert answers == {"a": 2, "b": 10}


def test_fast_and_strict_number_checks_agree():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mnistlab.serve.parsing import ApiError, numbers

    element = st.one_of(st.integers(-3, 300), st.floats(-1, 300), st.just(float("nan")), st.booleans(), st.none(),
                        st.text(max_size=2))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(element, st.lists(element, max_size=3)), min_size=1, max_size=4), st.booleans())
    def check(value, integers):
        results = []
        for fast in (True, False):
            has_bool = any(v is True or v is False for v in value) or any(
                isinstance(v, list) and any(w is True or w is False for w in v) for v in value)
            try:
                results.append(numbers(value, "p", hi=255, integers=integers, may_hold_bools=has_bool or not fast))
            except ApiError:
                results.append(None)
        if results[0] is None or results[1] is None:
            assert results[0] is None and results[1] is None
        else:
            np.testing.assert_array_equal(results[0], results[1])

    check()
