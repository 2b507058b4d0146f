"""The HTML report: every section, no external URL, two runs listed, optional sections, and a real
render in headless Chromium (images loaded, nothing fetched from outside the file)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["analysis_fixtures"]  # session fixtures shared with test_analysis.py



@pytest.fixture(scope="session")
def report(two_runs, tmp_path_factory, data_dir) -> Path:
    """A report of two runs; the second has interpretability figures, an export summary and a TTA record."""
    from mnistlab.report.html import build_report

    a, b = two_runs
    interp = b / "plots" / "interpretability"
    interp.mkdir(parents=True, exist_ok=True)
    shutil.copy(b / "plots" / "confusion_matrices" / "per_class_metrics.png", interp / "grad_cam.png")
    (b / "export").mkdir(exist_ok=True)
    (b / "export" / "onnx.json").write_text(json.dumps({"format": "onnx", "accuracy": 0.97, "max_abs_diff": 1e-6,
                                                        "latency_ms": {"p50": 0.41, "p95": 0.52}}))
    metrics = json.loads((b / "metrics.json").read_text())  # as `evaluate --tta auto` records its choice
    metrics["tta"] = {"mode": "auto", "used": True, "views": 2, "view_set": "flip",
                      "description": "the image and its left-right mirror", "val_accuracy_plain": 0.95,
                      "val_accuracy_tta": 0.96, "evaluate_seconds": 12.5}
    (b / "metrics.json").write_text(json.dumps(metrics))
    return build_report([a, b], tmp_path_factory.mktemp("report") / "report.html", data_dir=str(data_dir))


def test_report_has_every_section_and_no_external_url(report):
    html = report.read_text(encoding="utf-8")
    for section in ('id="data"', 'id="comparison"', 'id="environment"', "Training curves", "Confusion and per-class",
                    "<h3>Errors", "<h3>Calibration", "<h3>Uncertainty", "git_commit"):
        assert section in html, section
    assert not re.search(r"(?:https?|ftp)://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_report_lists_both_runs_and_optional_sections_only_where_present(report):
    html = report.read_text(encoding="utf-8")
    for label in ("simple-a", "simple-b"):
        assert f'href="#model-{label}"' in html and f'id="model-{label}"' in html
    assert html.count("<h3>Interpretability") == 1 and "Grad cam" in html
    assert html.count("<h3>Deployment") == 1 and "latency_ms.p95" in html
    assert html.count("Test-time augmentation") == 1  # only the run evaluated with --tta says so
    assert "Test-time augmentation (auto): on, the mean over 2 views (the image and its left-right mirror)" in html
    assert "96.00% with (flip)" in html
    # Two seeds of one architecture: the comparison shows mean ± std.
    assert re.search(r"<td>0\.\d{4} ± 0\.\d{4}</td>", html)
    assert (report.parent / "comparison" / "comparison.md").is_file()


def test_report_renders_in_headless_chromium(report, tmp_path, chromium):
    requests: list[str] = []
    browser = chromium
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
        assert len(images) >= 15
        assert all(done and w > 0 for done, w in images), images
        assert "mnistlab report" in page.title()
        # Nothing pushes the page sideways on a phone (wide figures scroll inside their box).
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(tmp_path / f"report-{width}.png"))
        assert (tmp_path / f"report-{width}.png").stat().st_size > 10_000
    assert requests and all(u.startswith(("file://", "data:")) for u in requests), \
        [u for u in requests if not u.startswith(("file://", "data:"))]


def test_report_embeds_nothing_from_outside_the_run(two_runs, tmp_path, data_dir, caplog):
    """A crafted analysis.json path and symlinks under plots/ and export/ leave nothing of their target."""
    import base64

    from PIL import Image

    from mnistlab.report.html import build_report

    secret_png = tmp_path / "secret" / "holiday.png"
    secret_png.parent.mkdir()
    Image.frombytes("L", (16, 16), bytes(range(256))).save(secret_png)
    secret_json = tmp_path / "secret" / "credentials.json"
    secret_json.write_text(json.dumps({"api_key": "SECRET-TOKEN-42"}))

    run = tmp_path / "hostile"
    shutil.copytree(two_runs[0], run)
    analysis = json.loads((run / "analysis.json").read_text())
    analysis["figures"]["confusion"] = str(secret_png)  # absolute path
    analysis["figures"]["examples"] = "../secret/holiday.png"  # relative escape
    (run / "analysis.json").write_text(json.dumps(analysis))
    (run / "plots" / "interpretability").mkdir(parents=True, exist_ok=True)
    (run / "plots" / "interpretability" / "gradcam.png").symlink_to(secret_png)
    (run / "export").mkdir(exist_ok=True)
    (run / "export" / "onnx.json").symlink_to(secret_json)

    html = build_report([run], tmp_path / "report.html", data_dir=str(data_dir)).read_text()
    payload = base64.b64encode(secret_png.read_bytes()).decode("ascii")
    assert payload not in html and "SECRET-TOKEN-42" not in html and "<h3>Deployment" not in html
    for name in ("holiday.png", "gradcam.png", "onnx.json"):  # warnings: stderr, unless logging is configured
        assert f"{name}: it leads outside the run directory" in caplog.text, caplog.text
