"""Fashion-MNIST end to end: its own preprocessing pipeline (photos of products, not handwriting),
and a Fashion run through predict, the service and the Open Inference Protocol with class names."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnistlab.data import registry
from mnistlab.data.images import ImageRejected
from mnistlab.data.preprocess import PIPELINES, image_to_input, pipeline_name, to_fashion, to_mnist

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def photo(image28: np.ndarray, *, scale: int = 4, margin: tuple[int, int] = (24, 64)) -> Image.Image:
    """A Fashion-MNIST image as a product photo: dark on a light (not pure white) background, RGB,
    enlarged, with a margin that makes the picture wider than tall."""
    item = Image.fromarray(255 - image28).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    top, left = margin
    canvas = Image.new("L", (28 * scale + 2 * left, 28 * scale + 2 * top), 250)
    canvas.paste(item.point(lambda v: min(v, 250)), (left, top))
    return canvas.convert("RGB")


def encoded(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def fashion_test(data_dir):
    from mnistlab.data.datasets import load_split

    x, y = load_split("fashion-mnist", "test", data_dir=str(data_dir))
    return x[:64].numpy(), y[:64].numpy()


def test_every_dataset_names_a_known_pipeline():
    assert {name: pipeline_name(name) for name in registry.names()} == {"fashion-mnist": "object", "mnist": "digit"}
    assert all(info.pipeline in PIPELINES for info in registry.DATASETS.values())


def bar(width: int, height: int, *, page: int = 255, ink: int = 0, size=(200, 120)) -> Image.Image:
    img = Image.new("L", size, page)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    img.paste(ink, (left, top, left + width, top + height))
    return img


def test_object_pipeline_fits_the_longer_side_to_28_and_keeps_the_aspect():
    out = to_fashion(bar(40, 80))  # a dark 40×80 bar on white paper
    cols, rows = np.flatnonzero((out > 0).any(0)), np.flatnonzero((out > 0).any(1))
    assert len(rows) == 28 and len(cols) == 14, "longer side 28, aspect 1:2 kept"
    assert cols[0] == 7 and cols[-1] == 20, "the box is centred"
    assert out[14, 14] > 200 and out[0, 0] == 0, "light background inverted: object light, background black"
    digit = to_mnist(bar(40, 80))
    assert (digit > 0).any(1).sum() == 20, "the digit pipeline puts the same bar in a 20-pixel box"


def test_object_pipeline_keeps_shading_and_does_not_centre_the_mass():
    img = Image.new("L", (120, 120), 255)
    img.paste(155, (20, 20, 100, 100))   # a mid-grey square (100 above the paper once inverted)...
    img.paste(0, (20, 20, 40, 100))      # ...with a dark band on its left: the mass sits left
    out = to_fashion(img).astype(int)
    assert abs(out[14, 20] - 100) <= 3, "mid grey stays mid grey (no contrast stretch)"
    cols = np.flatnonzero((out > 0).any(0))
    assert (cols[0], cols[-1]) == (0, 27), "the box, not the centre of mass, is centred"
    digit_cols = np.flatnonzero((to_mnist(img) > 0).any(0))
    assert digit_cols[0] > 4, "the digit pipeline shifts it to centre the mass"


def test_a_dark_background_is_not_inverted():
    light_on_dark = to_fashion(bar(40, 80, page=10, ink=230))
    dark_on_light = to_fashion(bar(40, 80, page=245, ink=25))
    assert light_on_dark[14, 14] > 200 and light_on_dark[1, 1] == 0
    assert np.abs(light_on_dark.astype(int) - dark_on_light).max() <= 2


def test_a_photo_of_a_test_image_comes_back_close_to_it(fashion_test):
    x, _ = fashion_test
    fashion = np.mean([np.abs(to_fashion(photo(a)).astype(float) - a).mean() for a in x])
    digit = np.mean([np.abs(to_mnist(photo(a)).astype(float) - a).mean() for a in x])
    assert fashion < 20 and fashion < digit / 2, (fashion, digit)


def test_blank_picture_is_refused_in_the_datasets_words():
    with pytest.raises(ImageRejected, match="give a picture of an item of clothing") as info:
        image_to_input(encoded(Image.new("RGB", (50, 40), (240, 240, 240))), "fashion-mnist", "blank.png")
    assert info.value.kind == "blank"


def test_predict_classifies_photos_like_the_originals(fashion_run, fashion_test, tmp_path):
    from mnistlab.predict import predict_arrays, predict_files

    x, _ = fashion_test
    x = x[:32]
    paths = []
    for i, a in enumerate(x):
        paths.append(tmp_path / f"item{i}.jpg")
        photo(a).save(paths[-1], quality=92)
    expected = predict_arrays(fashion_run, x).argmax(1)
    results = predict_files(fashion_run, paths)
    got = np.array([r["digit"] for r in results])
    assert all(r["label"] == FASHION_CLASSES[r["digit"]] for r in results)
    assert (got == expected).mean() >= 0.9, (got, expected)
    # The digit pipeline (what predict used before) shrinks and shifts them: far less agreement.
    as_digits = predict_arrays(fashion_run, np.stack([to_mnist(photo(a)) for a in x])).argmax(1)
    assert (as_digits == expected).mean() < (got == expected).mean() - 0.2


def test_the_service_answers_with_class_names_and_the_runs_pipeline(fashion_run, fashion_test):
    from serve_helpers import make_client

    from mnistlab.serve.model import ModelHolder

    client = make_client(ModelHolder.load(fashion_run, "torch"))
    model = client.get("/v1/model").json()
    assert model["class_names"] == list(FASHION_CLASSES) and model["dataset"] == "fashion-mnist"
    assert (model["subject"], model["preprocessing"]) == ("item of clothing", "object")
    x, _ = fashion_test
    for a in x[:6]:
        direct = client.post("/v1/predict", json={"pixels": a.tolist()}).json()
        r = client.post("/v1/predict?include_input=true", content=encoded(photo(a)),
                        headers={"content-type": "image/png"})
        answer = r.json()
        assert r.status_code == 200 and answer["label"] == FASHION_CLASSES[answer["digit"]]
        assert [t["label"] for t in answer["top_k"]] == [FASHION_CLASSES[t["digit"]] for t in answer["top_k"]]
        seen = np.array(answer["input"])
        assert np.abs(seen - a).mean() < 25, "the service saw the object pipeline's image"
        assert answer["digit"] == direct["digit"] or answer["top_k"][1]["digit"] == direct["digit"]
    blank = client.post("/v1/predict", content=encoded(Image.new("L", (40, 40), 255)),
                        headers={"content-type": "image/png"})
    assert blank.status_code == 422 and "item of clothing" in blank.json()["error"]


def test_open_inference_protocol_returns_class_names(fashion_run, fashion_test):
    import json

    from serve_helpers import make_client

    from mnistlab.serve.model import ModelHolder

    tritonclient_utils = pytest.importorskip("tritonclient.utils")
    client = make_client(ModelHolder.load(fashion_run, "torch"))
    name = fashion_run.name
    meta = client.get(f"/v2/models/{name}").json()
    assert ("label", "BYTES") in [(o["name"], o["datatype"]) for o in meta["outputs"]]
    x, _ = fashion_test
    body = {"inputs": [{"name": "images", "shape": [4, 28, 28], "datatype": "UINT8", "data": x[:4].tolist()}]}
    outputs = {o["name"]: o for o in client.post(f"/v2/models/{name}/infer", json=body).json()["outputs"]}
    assert outputs["label"]["shape"] == [4]
    assert outputs["label"]["data"] == [FASHION_CLASSES[k] for k in outputs["digit"]["data"]]
    # The binary form, as tritonclient decodes BYTES tensors.
    header = json.dumps({**body, "outputs": [{"name": "label", "parameters": {"binary_data": True}}]}).encode()
    r = client.post(f"/v2/models/{name}/infer", content=header, headers={"Inference-Header-Content-Length": str(len(header))})
    n = int(r.headers["inference-header-content-length"])
    labels = tritonclient_utils.deserialize_bytes_tensor(r.content[n:])
    assert [v.decode() for v in labels] == outputs["label"]["data"]


@pytest.mark.slow
def test_the_drawing_page_asks_for_an_item_of_clothing(fashion_run, chromium):
    from serve_helpers import serve_process

    with serve_process(fashion_run) as url:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/", wait_until="load")
        page.wait_for_function("document.getElementById('model').textContent.includes('fashion-mnist')")
        assert page.text_content("#title") == "Draw an item of clothing"
        assert page.text_content("#classes") == "one of: " + ", ".join(FASHION_CLASSES)
        names = page.evaluate("[...document.querySelectorAll('#bars .name')].map(e => e.textContent)")
        assert names == list(FASHION_CLASSES)
        assert "digit" not in page.title()


@pytest.mark.slow
def test_every_command_on_a_fashion_run(fashion_run, fashion_test, tmp_path, capsys):
    """evaluate, plots, report, explain (test index and picture), export, bench, predict: exit 0, class names."""
    import json

    from mnistlab import cli

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert cli.main([*argv]) == 0, argv
        return capsys.readouterr().out

    run_dir = str(fashion_run)
    assert "Ankle boot" in run("evaluate", run_dir) and "most confused" in run("evaluate", run_dir)
    assert json.loads(run("plots", run_dir, "--mc-limit", "50", "--json"))["figures"]
    report = tmp_path / "report.html"
    run("report", run_dir, "-o", str(report), "--mc-limit", "50")
    assert "T-shirt/top" in report.read_text() and "fashion-mnist" in report.read_text()
    explained = json.loads(run("explain", run_dir, "--index", "0", "--target", "Sneaker", "--json"))
    assert explained["examples"][0]["predicted_name"] in FASHION_CLASSES
    assert 7 in explained["examples"][0]["gradcam_classes"]  # Sneaker
    picture = tmp_path / "boot.png"
    photo(fashion_test[0][0]).save(picture)
    assert "predicted" in run("explain", run_dir, "--image", str(picture))
    run("export", run_dir, "--format", "onnx")
    import onnxruntime

    meta = onnxruntime.InferenceSession(str(fashion_run / "export" / "model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == list(FASHION_CLASSES) and "item of clothing" in meta["input"]
    bench = json.loads(run("bench", run_dir, "--quick", "--paths", "torch_eager", "--json"))
    assert bench["conditions"]["input"].startswith("fashion-mnist")
    answer = json.loads(run("predict", run_dir, str(picture), "--json"))[0]
    assert answer["label"] == FASHION_CLASSES[answer["digit"]]


@pytest.mark.slow
def test_a_keras_fashion_run_evaluates_explains_and_predicts(tmp_path, data_dir, fashion_test, capsys):
    pytest.importorskip("keras")
    import json

    from mnistlab import cli

    out = tmp_path / "keras-fashion"
    assert cli.main(["train", "--arch", "simple", "--framework", "keras", "--dataset", "fashion-mnist", "--epochs", "1",
                     "--train-subset", "5000", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in metrics["per_class"]] == list(FASHION_CLASSES) and metrics["accuracy"] > 0.5
    picture = tmp_path / "item.png"
    photo(fashion_test[0][0]).save(picture)
    assert cli.main(["explain", str(out), "--image", str(picture), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"][0]["predicted_name"] in FASHION_CLASSES
    assert cli.main(["predict", str(out), str(picture), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]
    assert answer["label"] == FASHION_CLASSES[answer["digit"]]
