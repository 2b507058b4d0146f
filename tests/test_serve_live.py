"""The real thing: `mnistlab serve` started on a free port, talked to over HTTP by a real Open
Inference Protocol client (tritonclient[http]) and by a real browser (Playwright + Debian's Chromium)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from serve_helpers import serve_process

pytest_plugins = ["serve_fixtures"]


@pytest.fixture(scope="module")
def server(trained_run):
    """``mnistlab serve RUN --port P`` in a subprocess; yields the base URL."""
    with serve_process(trained_run) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_classifies_real_mnist_digits(server, trained_run, test_digits, binary):
    import tritonclient.http as httpclient

    name = trained_run.name
    client = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(name)
    meta = client.get_model_metadata(name)
    x, y = test_digits
    x, y = x[:32], y[:32]
    inp = httpclient.InferInput(meta["inputs"][0]["name"], list(x.shape), meta["inputs"][0]["datatype"])
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("digit", binary_data=binary),
               httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer(name, inputs=[inp], outputs=outputs, request_id="42")
    digits, probs = result.as_numpy("digit"), result.as_numpy("probabilities")
    assert digits.shape == (32,) and probs.shape == (32, 10)
    assert (digits == y).mean() >= 0.8
    np.testing.assert_array_equal(digits, probs.argmax(1))
    # With no outputs named, the client asks for everything in binary.
    everything = client.infer(name, inputs=[inp])
    np.testing.assert_array_equal(everything.as_numpy("digit"), digits)
    assert [v.decode() for v in everything.as_numpy("label")] == [str(d) for d in digits]  # BYTES, binary


def _draw_seven(page, box):
    """A '7' in mouse strokes: the top bar, then the diagonal."""
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.25 * w, y0 + 0.2 * h)
    page.mouse.down()
    for t in np.linspace(0, 1, 12):
        page.mouse.move(x0 + (0.25 + 0.5 * t) * w, y0 + 0.2 * h)
    for t in np.linspace(0, 1, 16):
        page.mouse.move(x0 + (0.75 - 0.3 * t) * w, y0 + (0.2 + 0.65 * t) * h)
    page.mouse.up()


@pytest.mark.slow
def test_the_drawing_page_in_chromium(server, tmp_path, chromium):
    requests: list[str] = []
    browser = chromium
    for width in (1280, 390):  # a desktop and a phone
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server + "/", wait_until="load")
        page.wait_for_function("document.getElementById('model').textContent.includes('simple')")
        _draw_seven(page, page.locator("#pad").bounding_box())
        page.wait_for_function("document.getElementById('answer').textContent !== '—'")
        page.wait_for_function("document.getElementById('camcap').textContent.includes('Grad-CAM for')")
        probs = page.evaluate("[...document.querySelectorAll('#bars li')].map(li => Number(li.dataset.p))")
        assert len(probs) == 10 and abs(sum(probs) - 1) < 0.01
        shown = page.evaluate("[...document.querySelectorAll('#bars .pct')].map(e => parseFloat(e.textContent))")
        assert abs(sum(shown) - 100) < 1.5
        widths = page.evaluate("[...document.querySelectorAll('#bars li')].map(li => "
                               "li.querySelector('.fill').getBoundingClientRect().width / "
                               "li.querySelector('.track').getBoundingClientRect().width)")
        assert abs(max(widths) - max(probs)) < 0.02  # the bars are drawn, to scale
        answer = page.text_content("#answer")
        assert answer == str(int(np.argmax(probs)))
        assert answer == "7", f"drew a 7, the page says {answer} ({probs})"
        seen = page.evaluate("Array.from(document.getElementById('seen').getContext('2d')"
                             ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 == 0)")
        assert max(seen) == 255 and seen[0] == 0  # the 28×28 the model saw: white on black
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot = tmp_path / f"serve-page-{width}.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        page.click("#undo")
        page.wait_for_function("document.getElementById('answer').textContent === '—'")
    assert all(u.startswith(server) or u.startswith("data:") for u in requests), requests
    artifacts = os.environ.get("MNISTLAB_TEST_ARTIFACTS")  # keep the screenshots beyond tmp_path
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for width in (1280, 390):
            shutil.copy(tmp_path / f"serve-page-{width}.png", Path(artifacts) / f"serve-page-{width}.png")
