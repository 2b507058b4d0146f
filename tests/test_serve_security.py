"""The service under hostile or careless use: the token, the bind-address rule, CORS, body limits
refused before the body is read, genuine time-outs, run directories never unpickled, and the
ONNX and ensemble backends."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from serve_helpers import fake_holder, make_client

pytest_plugins = ["serve_fixtures"]


def test_token_guards_everything_but_the_probes_and_the_page():
    client = make_client(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready", "/", "/static/app.js"):
        assert client.get(path).status_code == 200, path
    for path in ("/v1/model", "/metrics", "/openapi.json", "/v2/models/fake"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers=good).status_code == 200
    r = client.post("/v1/predict", json={"pixels": [0] * 784})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "MNISTLAB_API_TOKEN" in r.json()["error"]
    assert client.post("/v1/predict", json={"pixels": [0] * 784}, headers=good).status_code == 200


def _serve(*args, env_token=None):
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_API_TOKEN"}
    if env_token:
        env["MNISTLAB_API_TOKEN"] = env_token
    return subprocess.run([sys.executable, "-m", "mnistlab", "serve", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_non_loopback_bind_without_token_is_refused_before_the_model_loads(tmp_path):
    missing = str(tmp_path / "no-such-run")
    proc = _serve(missing, "--host", "0.0.0.0")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "MNISTLAB_API_TOKEN" in lines[0] and "--insecure" in lines[0]
    assert "no-such-run" not in lines[0]  # refused before the run was even looked at
    # With --insecure (or a token) the next check is the run itself: it is the bind rule that stopped it above.
    insecure = _serve(missing, "--host", "0.0.0.0", "--insecure")
    assert insecure.returncode == 2 and "no-such-run" in insecure.stderr and "Traceback" not in insecure.stderr


def test_cors_is_off_by_default_and_on_for_named_origins():
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    off = make_client().options("/v1/predict", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    assert "access-control-allow-origin" not in make_client().get("/healthz", headers={"Origin": "http://evil.example"}).headers
    on = make_client(cors_origins=["http://page.example"], token="t")
    r = on.options("/v1/predict", headers={**preflight, "Origin": "http://page.example"})
    assert r.headers.get("access-control-allow-origin") == "http://page.example"


def _asgi_post(app, path, headers, chunks):
    """Call ``app`` directly; ``chunks`` is an iterator of body pieces. Returns (status, pieces read)."""
    read, sent = [0], []

    async def receive():
        read[0] += 1
        piece = next(chunks, None)
        return {"type": "http.request", "body": piece or b"", "more_body": piece is not None}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("test", 80),
             "client": ("test", 1), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), read[0]


def _endless(size=64 * 1024):
    while True:
        yield b"1" * size


def _prefixed(head):
    yield head
    yield from _endless()


def test_body_over_the_limit_is_413_before_it_is_read():
    app = make_client().app
    status, read = _asgi_post(app, "/v1/predict", [(b"content-length", b"50000000"),
                                                   (b"content-type", b"application/json")], _endless())
    assert status == 413 and read == 0  # refused from the header: not one piece read
    # No Content-Length (chunked): counted as it arrives, refused once past the limit, never read to the end.
    status, read = _asgi_post(app, "/v1/predict", [(b"content-type", b"image/png")], _endless())
    assert status == 413 and read <= 1024 * 1024 // (64 * 1024) + 2
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    status, read = _asgi_post(app, "/v1/predict", [(b"content-type", b"multipart/form-data; boundary=x")],
                              _prefixed(head))
    assert status == 413 and read <= 1024 * 1024 // (64 * 1024) + 3


def test_the_body_limit_is_configurable():
    client = make_client(max_body=2_000)  # 784 × "255," is 3 KB
    assert client.post("/v1/predict", json={"pixels": [255] * 784}).status_code == 413
    assert make_client().post("/v1/predict", json={"pixels": [255] * 784}).status_code == 200


def test_only_a_genuine_time_out_is_a_5xx():
    def slow(images):
        time.sleep(0.5)
        return np.zeros((len(images), 10), np.float32)

    client = make_client(fake_holder(slow), timeout_s=0.05)
    r = client.post("/v1/predict", json={"pixels": [[0] * 784] * 16})  # a batch runs in a thread, under the limit
    assert r.status_code == 504 and "limit" in r.json()["error"]
    assert client.post("/v1/predict", json={"pixels": [[0] * 784] * 2, "x": None}).status_code == 200  # inline: no limit
    for bad in ({"pixels": "x"}, {"pixels": [[0] * 784] * 300}):
        assert client.post("/v1/predict", json=bad).status_code < 500
    assert client.get("/healthz").status_code == 200


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_run_directory_is_never_unpickled(trained_run, tmp_path):
    from mnistlab.errors import UserError
    from mnistlab.serve.model import ModelHolder

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"
    (run / "checkpoint.pt").write_bytes(pickle.dumps(_Payload(str(marker))))
    holder = ModelHolder.load(run)
    assert holder.probabilities(np.zeros((1, 28, 28), np.uint8)).shape == (1, 10)
    assert not marker.exists()
    (run / "model.safetensors").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(UserError):
        ModelHolder.load(run)
    assert not marker.exists()


def test_onnx_backend_exports_when_missing_and_agrees_with_torch(trained_run, real_holder, test_digits, tmp_path):
    from mnistlab.serve.model import ModelHolder

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export"))
    holder = ModelHolder.load(run, "onnx")
    assert (run / "export" / "model.onnx").is_file()
    x, _ = test_digits
    np.testing.assert_allclose(holder.probabilities(x), real_holder.probabilities(x), atol=1e-4)
    client = make_client(holder)
    assert client.get(f"/v2/models/{run.name}").json()["platform"] == "onnxruntime_onnx"
    assert client.post("/v1/predict", json={"pixels": x[0].tolist()}).json()["digit"] == real_holder.probabilities(x[:1]).argmax()


def test_an_ensemble_run_is_served(trained_run, test_digits, tmp_path):
    from mnistlab.ensembles import ensemble_runs
    from mnistlab.serve.model import ModelHolder

    out = tmp_path / "ens"
    ensemble_runs([trained_run, trained_run], out=out)
    client = make_client(ModelHolder.load(out))
    x, y = test_digits
    r = client.post("/v1/predict", json={"pixels": x[:16].tolist()})
    assert r.status_code == 200
    assert (np.array([p["digit"] for p in r.json()["predictions"]]) == y[:16]).mean() >= 0.75
