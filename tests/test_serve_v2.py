"""The Open Inference Protocol (KServe v2 REST) in process: metadata, infer in every accepted form
(JSON with or without a content type, flat or nested, UINT8 or FP32, binary tensors) and every
client mistake answered 400 {"error": ...}."""

from __future__ import annotations

import json

import numpy as np
import pytest

from serve_helpers import fake_logits

pytest_plugins = ["serve_fixtures"]


def infer_body(data, shape, datatype="UINT8", **extra):
    return {"inputs": [{"name": "images", "shape": shape, "datatype": datatype, "data": data}], **extra}


def test_metadata_and_readiness(real_client, trained_run):
    name = trained_run.name
    meta = real_client.get(f"/v2/models/{name}").json()
    assert meta["name"] == name and meta["versions"] == ["1"] and meta["platform"]
    (images,) = meta["inputs"]
    assert (images["name"], images["datatype"], images["shape"]) == ("images", "UINT8", [-1, 28, 28])
    # which preprocessing the tensor must already have had: the digit pipeline of export/preprocess.py
    assert images["parameters"]["preprocessing"] == "digit"
    assert "digit on black" in images["parameters"]["form"]
    assert "export/preprocess.py" in images["parameters"]["preprocess_script"]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [("probabilities", "FP32"), ("digit", "INT64"),
                                                                     ("label", "BYTES")]
    assert real_client.get(f"/v2/models/{name}/ready").json()["ready"] is True
    assert real_client.get(f"/v2/models/{name}/versions/1").status_code == 200
    assert real_client.get("/v2/models/other").status_code == 404
    assert "error" in real_client.get("/v2/models/other/ready").json()


@pytest.mark.parametrize("form", ["flat", "nested", "n784", "n1hw", "fp32"])
def test_infer_classifies_real_digits_in_every_accepted_form(real_client, trained_run, test_digits, form):
    x, y = test_digits
    x, y = x[:8], y[:8]
    body = {"flat": infer_body(x.ravel().tolist(), [8, 28, 28]),
            "nested": infer_body(x.tolist(), [8, 28, 28]),
            "n784": infer_body(x.reshape(8, 784).tolist(), [8, 784]),
            "n1hw": infer_body(x[:, None].tolist(), [8, 1, 28, 28]),
            "fp32": infer_body((x / 255.0).ravel().tolist(), [8, 28, 28], "FP32")}[form]
    body["id"] = "req-1"
    body["inputs"][0]["parameters"] = {"binary_data": False}  # unknown parameters are ignored
    # No Content-Type header, as tritonclient sends it.
    r = real_client.post(f"/v2/models/{trained_run.name}/infer", content=json.dumps(body))
    answer = r.json()
    assert r.status_code == 200 and answer["model_name"] == trained_run.name and answer["id"] == "req-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["probabilities"]["shape"] == [8, 10]
    assert outputs["digit"]["datatype"] == "INT64" and outputs["digit"]["shape"] == [8]
    assert (np.array(outputs["digit"]["data"]) == y).mean() >= 0.75
    assert outputs["label"]["data"] == [str(k) for k in outputs["digit"]["data"]]  # MNIST's class names
    np.testing.assert_allclose(np.array(outputs["probabilities"]["data"]).reshape(8, 10).sum(1), 1, atol=1e-4)


def test_only_the_outputs_asked_for(client):
    r = client.post("/v2/models/fake/infer", json=infer_body([0] * 784, [1, 784], outputs=[{"name": "digit"}]))
    assert [o["name"] for o in r.json()["outputs"]] == ["digit"]


def test_binary_tensor_extension_in_and_out(client):
    x = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    header = json.dumps({"inputs": [{"name": "images", "shape": [3, 28, 28], "datatype": "UINT8",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                     {"name": "digit"}]}).encode()
    r = client.post("/v2/models/fake/infer", content=header + x.tobytes(),
                    headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200
    n = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:n])
    probs = np.frombuffer(r.content[n:], dtype="<f4").reshape(3, 10)
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == probs.nbytes
    assert answer["outputs"][1]["data"] == list(probs.argmax(1)) == list(fake_logits(x).argmax(1))


def test_a_batch_of_256_fp32_images_fits_the_infer_body_limit(client):
    x = np.random.default_rng(1).random((256, 784))
    r = client.post("/v2/models/fake/infer", content=json.dumps(infer_body(x.ravel().tolist(), [256, 784], "FP32")))
    assert r.status_code == 200 and r.json()["outputs"][1]["shape"] == [256]


BAD = {
    "not json": b"{oops",
    "no inputs": {"id": "x"},
    "inputs empty": {"inputs": []},
    "two inputs": {"inputs": [infer_body([0] * 784, [1, 784])["inputs"][0]] * 2},
    "wrong input name": {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}]},
    "wrong datatype": infer_body([0] * 784, [1, 784], "INT8"),
    "wrong shape": infer_body([0] * 784, [1, 28, 29]),
    "shape with bool": infer_body([0] * 784, [True, 784]),
    "shape too short": infer_body([0] * 784, [784]),
    "zero batch": infer_body([], [0, 784]),
    "data too short": infer_body([0] * 700, [1, 784]),
    "data nested wrong": infer_body([[0] * 392] * 2, [1, 28, 28]),
    "uint8 out of range": infer_body([256] * 784, [1, 784]),
    "uint8 float": infer_body([0.5] * 784, [1, 784]),
    "fp32 over 1": infer_body([2.0] * 784, [1, 784], "FP32"),
    "strings": infer_body(["0"] * 784, [1, 784]),
    "nulls": infer_body([None] * 784, [1, 784]),
    "data missing": {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8"}]},
    "unknown output": infer_body([0] * 784, [1, 784], outputs=[{"name": "logits"}]),
    "batch over limit": infer_body([0] * 784 * 257, [257, 784]),
    "bad binary size": {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "UINT8",
                                    "parameters": {"binary_data_size": 5}}]},
}


@pytest.mark.parametrize("body", BAD.values(), ids=BAD.keys())
def test_client_mistakes_are_400_with_an_error(client, body):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/v2/models/fake/infer", content=content)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]


def test_bad_header_length_is_400(client):
    r = client.post("/v2/models/fake/infer", content=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert r.status_code == 400
