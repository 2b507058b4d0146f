"""Test-time augmentation: exact shifts, mirrors only where the data set allows them, the validation-only
choice, and `evaluate --tta` end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.cli import main
from mnistlab.errors import UserError
from mnistlab.evaluation import evaluate as evaluate_module
from mnistlab.evaluation.tta import SHIFTS, VIEW_SETS, allowed_sets, check_mode, shift_images, tta_logits, validation_choice
from mnistlab.maths.metrics import softmax


def _asymmetric_images(n=3, size=8, seed=0):
    """Random images with a black border of two pixels, so a one-pixel shift loses nothing."""
    x = np.zeros((n, size, size), np.uint8)
    x[:, 2:-2, 2:-2] = np.random.default_rng(seed).integers(1, 256, (n, size - 4, size - 4))
    return x


def test_shift_moves_every_pixel_by_one_and_fills_the_border():
    image = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4)
    down = shift_images(image, 1, 0, fill=-0.5)
    assert down[0, 0].tolist() == [-0.5] * 4 and np.array_equal(down[0, 1:], image[0, :3])
    left = shift_images(image, 0, -1, fill=-0.5)
    assert left[0, :, 3].tolist() == [-0.5] * 4 and np.array_equal(left[0, :, :3], image[0, :, 1:])
    corner = shift_images(image, -1, 1, fill=0)
    assert corner[0].tolist() == [[0, 5, 6, 7], [0, 9, 10, 11], [0, 13, 14, 15], [0, 0, 0, 0]]
    assert np.array_equal(shift_images(image, 0, 0), image)
    nchw = image[:, None]  # [N, 1, H, W]: the last two axes are shifted whatever comes before
    assert np.array_equal(shift_images(nchw, 1, 0, fill=-0.5)[:, 0], down)
    with pytest.raises(ValueError):
        shift_images(image, 4, 0)


def test_views_are_the_image_and_its_one_pixel_shifts_never_a_flip():
    x = _asymmetric_images()
    seen = []
    tta_logits(lambda v: seen.append(v.copy()) or np.zeros((len(v), 10)), x)
    views = np.concatenate(seen).reshape(len(SHIFTS), *x.shape)
    assert len(set(SHIFTS)) == len(SHIFTS) == 9 and SHIFTS[0] == (0, 0)
    assert all(max(abs(dy), abs(dx)) == 1 for dy, dx in SHIFTS[1:])
    for view, (dy, dx) in zip(views, SHIFTS):
        assert np.array_equal(view, np.roll(x, (dy, dx), axis=(1, 2)))  # lossless here: the border is black
    for flipped in (x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1]):
        assert not any(np.array_equal(view, flipped) for view in views)


def test_a_model_that_ignores_its_input_keeps_its_prediction():
    plain = np.array([3.0, 1.0, -2.0, 0.5])
    blind = lambda v: np.tile(plain, (len(v), 1))  # noqa: E731
    got = tta_logits(blind, _asymmetric_images(5))
    np.testing.assert_allclose(softmax(got), softmax(blind(range(5))), atol=1e-6)
    np.testing.assert_allclose(np.exp(got).sum(1), 1, atol=1e-5)  # log-probabilities


def test_chunks_give_the_same_answer_as_one_call():
    """A pixel-sensitive model: chunking (one image per call) changes nothing; the result is the mean probability."""
    x = _asymmetric_images(7).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(64, 10)).astype(np.float32) / 300
    linear = lambda v: v.reshape(len(v), -1) @ w  # noqa: E731
    by_hand = np.log(np.mean([softmax(linear(shift_images(x, dy, dx))) for dy, dx in SHIFTS], axis=0))
    np.testing.assert_allclose(tta_logits(linear, x), by_hand, atol=1e-5)
    np.testing.assert_allclose(tta_logits(linear, x, views_per_call=len(SHIFTS)), by_hand, atol=1e-5)
    assert not np.allclose(by_hand, np.log(softmax(linear(x))), atol=1e-3)  # TTA did change something


def _one_pixel_model(row, col, bias):
    """Class 0 with logit 10 where pixel (row, col) is lit, else class 1 (logit ``bias`` against 0)."""
    return lambda v: np.stack([10.0 * (v[:, row, col] > 0), np.full(len(v), bias)], 1)


def test_auto_keeps_tta_only_when_it_wins_on_validation():
    x = np.zeros((4, 8, 8), np.uint8)
    x[::2, 4, 4] = 255  # class 0: one lit pixel at (4, 4); class 1: black
    y = np.array([0, 1, 0, 1])
    # Looks one pixel to the right of the dot: wrong on plain images, right once the shifted views vote.
    _, record = validation_choice("auto", _one_pixel_model(4, 5, 0.1), x, y)
    assert record["used"] and record["views"] == 9 and record["val_accuracy_plain"] == 0.5
    assert record["val_accuracy_tta"] == 1.0
    # Right either way: a tie keeps the cheaper plain prediction.
    _, record = validation_choice("auto", _one_pixel_model(4, 4, 0.1), x, y)
    assert not record["used"] and record["views"] == 1 and record["val_accuracy_tta"] == record["val_accuracy_plain"] == 1.0
    # Right on plain images, outvoted by the 8 views where the dot moved away: TTA loses.
    logits, record = validation_choice("auto", _one_pixel_model(4, 4, 0.5), x, y)
    assert not record["used"] and (record["val_accuracy_plain"], record["val_accuracy_tta"]) == (1.0, 0.5)
    assert np.array_equal(logits.argmax(1), y)  # the plain logits were kept
    logits, record = validation_choice("shifts", _one_pixel_model(4, 4, 0.5), x, y)
    assert record["used"] and np.array_equal(logits.argmax(1), [1, 1, 1, 1])  # asked for: kept even though it loses
    logits, record = validation_choice("off", _one_pixel_model(4, 4, 0.5), x, y)
    assert record == {"mode": "off", "used": False, "views": 1}
    with pytest.raises(UserError, match="choose one of off, shifts, flip, auto"):
        check_mode("hflip")


def test_flip_views_are_the_image_and_its_mirror_and_only_where_the_data_set_allows():
    x = _asymmetric_images()
    seen = []
    tta_logits(lambda v: seen.append(v.copy()) or np.zeros((len(v), 10)), x, views=VIEW_SETS["flip"])
    plain, mirrored = np.concatenate(seen).reshape(2, *x.shape)
    assert np.array_equal(plain, x) and np.array_equal(mirrored, x[:, :, ::-1])
    assert allowed_sets(False) == ("shifts",) and allowed_sets(True) == ("flip", "shifts")
    with pytest.raises(UserError, match="a mirrored digit is not the same digit.*takes off, shifts, auto"):
        check_mode("flip", mirrors=False, subject="digit")
    with pytest.raises(UserError, match="mirrored"):  # nor through auto's candidates
        validation_choice("auto", lambda v: np.zeros((len(v), 2)), x, np.zeros(3, int), candidates=("flip",))
    assert check_mode("flip", mirrors=True) == "flip"


def _left_half_model(v):
    """Class 0 when the left half is brighter than the right, else class 1: a mirror swaps its answer."""
    half = v.shape[-1] // 2
    d = v[..., :half].astype(float).sum((-2, -1)) - v[..., half:].astype(float).sum((-2, -1))
    return np.stack([d, -d], 1)


def test_auto_picks_the_view_set_that_wins_on_validation_and_ties_go_to_the_cheaper():
    x = _asymmetric_images(6)
    y = _left_half_model(x).argmax(1)
    # Mirror-sensitive and right on plain images: flipping halves its votes, shifts keep them.
    _, record = validation_choice("auto", _left_half_model, x, y, mirrors=True)
    assert record["candidates"]["shifts"] == 1.0 and record["candidates"]["flip"] < 1.0
    assert not record["used"]  # neither beats plain (1.0)
    assert set(record["candidates"]) == {"flip", "shifts"} and record["view_set"] == "shifts"
    # Digits: auto never shows a mirror.
    _, record = validation_choice("auto", _left_half_model, x, y, mirrors=False)
    assert set(record["candidates"]) == {"shifts"}
    # A model that ignores its input ties everywhere: the cheaper set is named, plain is kept.
    blind = lambda v: np.tile([1.0, 0.0], (len(v), 1))  # noqa: E731
    _, record = validation_choice("auto", blind, x, np.zeros(6, int), mirrors=True)
    assert record["view_set"] == "flip" and not record["used"]
    # Looks at the mirror image of where the dot is: wrong on plain images, right once the mirror votes.
    dots = np.zeros((4, 8, 8), np.uint8)
    dots[::2, 4, 2] = 255  # class 0: a dot at column 2, whose mirror is column 5
    logits, record = validation_choice("auto", _one_pixel_model(4, 5, 0.1), dots, np.array([0, 1, 0, 1]), mirrors=True)
    assert record["used"] and record["view_set"] == "flip" and record["views"] == 2
    assert record["candidates"] == {"flip": 1.0, "shifts": 0.5} and record["val_accuracy_plain"] == 0.5
    assert np.array_equal(logits.argmax(1), [0, 1, 0, 1])


def test_auto_decides_before_the_test_split_is_read(trained_run, tmp_path, monkeypatch, capsys):
    """The choice and its evidence are the same with the real test labels and with shuffled ones."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    real_load, events = evaluate_module.load_test_split, []

    def choice(*args, **kwargs):
        events.append("choice")
        return real_validation_choice(*args, **kwargs)

    def shuffled_test(*args, **kwargs):
        events.append("test")
        x, y = real_load(*args, **kwargs)
        return x, y[np.random.default_rng(0).permutation(len(y))]

    real_validation_choice = evaluate_module.validation_choice
    monkeypatch.setattr(evaluate_module, "validation_choice", choice)
    # A cheap stand-in for the model, sensitive to pixels so TTA changes its answers: test only the plumbing.
    w = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32)
    monkeypatch.setattr(evaluate_module, "predictor", lambda _d: lambda v: v.reshape(len(v), -1).astype(np.float32) @ w)
    honest = evaluate_module.evaluate_run(run, tta="auto")
    monkeypatch.setattr(evaluate_module, "load_test_split", shuffled_test)
    assert main(["evaluate", str(run), "--tta", "auto", "--json"]) == 0
    out, err = capsys.readouterr()
    corrupt = json.loads(out)
    assert events == ["choice", "choice", "test"]  # validation decided before the test split was read
    drop = lambda t: {k: v for k, v in t.items() if k != "evaluate_seconds"}  # noqa: E731
    assert drop(honest["tta"]) == drop(corrupt["tta"]) and honest["accuracy"] != corrupt["accuracy"]
    assert json.loads((run / runs.METRICS).read_text())["tta"] == corrupt["tta"]  # recorded in metrics.json
    assert len(err.strip().splitlines()) == 1 and err.startswith("tta auto: TTA") and "chosen on validation" in err


def test_flip_tta_on_a_fashion_run_and_a_one_line_refusal_on_digits(fashion_run, trained_run, tmp_path, capsys):
    """`evaluate --tta flip`: 2 views on Fashion-MNIST, recorded; on an MNIST run exit 2, one line, nothing written."""
    run = tmp_path / "fashion"
    shutil.copytree(fashion_run, run)
    assert main(["evaluate", str(run), "--tta", "flip", "--json"]) == 0
    out, err = capsys.readouterr()
    tta = json.loads(out)["tta"]
    assert tta["used"] and tta["view_set"] == "flip" and tta["views"] == 2 and set(tta["candidates"]) == {"flip"}
    assert tta["view_list"] == [[0, 0, False], [0, 0, True]]
    assert len(err.strip().splitlines()) == 1 and "TTA on (2 views: the image and its left-right mirror)" in err
    val_logits, val_y = runs.load_predictions(run / runs.VAL_PREDICTIONS)
    assert float((val_logits.argmax(1) == val_y).mean()) == pytest.approx(tta["val_accuracy_tta"])

    before = (trained_run / runs.METRICS).read_bytes()
    assert main(["evaluate", str(trained_run), "--tta", "flip"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "a mirrored digit is not the same digit" in err
    assert (trained_run / runs.METRICS).read_bytes() == before


@pytest.mark.slow  # 150,000 forward passes of the model: tens of seconds on 2 cores
def test_evaluate_with_tta_end_to_end(trained_run, tmp_path, capsys):
    """`evaluate --tta shifts` on a real run: log-probability predictions, the choice recorded, one stderr line;
    an ensemble reads the result like any run's."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    code = main(["evaluate", str(run), "--tta", "shifts", "--json"])
    out, err = capsys.readouterr()
    metrics = json.loads(out)
    assert code == 0 and metrics["accuracy"] >= 0.93 and metrics["n_samples"] == 10_000
    tta = metrics["tta"]
    assert tta["used"] and tta["mode"] == "shifts" and tta["views"] == 9 and tta["evaluate_seconds"] > 0
    assert 0.9 <= tta["val_accuracy_plain"] <= 1 and 0.9 <= tta["val_accuracy_tta"] <= 1
    assert json.loads((run / runs.METRICS).read_text())["tta"] == tta
    assert len(err.strip().splitlines()) == 1 and "TTA on (9 views" in err and "validation accuracy" in err
    for name in (runs.PREDICTIONS, runs.VAL_PREDICTIONS):
        logits, _ = runs.load_predictions(run / name)
        np.testing.assert_allclose(np.exp(logits.astype(np.float64)).sum(1), 1, atol=1e-4)
    val_logits, val_y = runs.load_predictions(run / runs.VAL_PREDICTIONS)
    assert float((val_logits.argmax(1) == val_y).mean()) == pytest.approx(tta["val_accuracy_tta"])

    code = main(["ensemble", str(run), str(trained_run), "--out", str(tmp_path / "ens"), "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["accuracy"] >= 0.93


def test_bad_tta_value_is_one_line_and_exit_2(trained_run, capsys):
    code = main(["evaluate", str(trained_run), "--tta", "flips"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--tta 'flips'" in err
