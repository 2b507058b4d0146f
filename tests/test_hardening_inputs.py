"""Inputs that could exhaust memory: --seeds ranges and .npz members are capped, with one-line errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from mnistlab import runs
from mnistlab.errors import UserError
from mnistlab.experiments.multiseed import MAX_SEEDS, parse_seeds


@pytest.mark.parametrize("text", ["0-2000000000", f"0-{MAX_SEEDS}", "5,0-99", "99999999999", "3-1"])
def test_seed_ranges_are_capped_before_expanding(text):
    with pytest.raises(UserError) as err:
        parse_seeds(text)
    assert "\n" not in str(err.value)


def test_seed_cap_allows_the_limit():
    assert parse_seeds(f"0-{MAX_SEEDS - 1}") == list(range(MAX_SEEDS))


def npz(path, **arrays):
    np.savez_compressed(path, **arrays)
    return path


def test_predictions_round_trip(tmp_path):
    logits, labels = np.random.default_rng(0).normal(size=(7, 10)).astype(np.float32), np.arange(7) % 10
    runs.save_predictions(tmp_path / "p.npz", logits, labels)
    got_logits, got_labels = runs.load_predictions(tmp_path / "p.npz")
    np.testing.assert_array_equal(got_logits, logits)
    np.testing.assert_array_equal(got_labels, labels)


def huge_member_npz(path):
    """A tiny file whose logits.npy header declares a 10^12-element array (nothing behind it)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (10**12, 10)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("logits.npy", header.getvalue())
        zf.writestr("labels.npy", b"")
    return path


@pytest.mark.parametrize("make, message", [
    (huge_member_npz, "over"),
    (lambda p: npz(p, logits=np.array([{"a": 1}], dtype=object), labels=np.zeros(1, int)), "dtype object"),
    (lambda p: npz(p, logits=np.zeros((3, 10)), labels=np.zeros(4, int)), "do not match"),
    (lambda p: npz(p, labels=np.zeros(3, int)), "no 'logits.npy'"),
    (lambda p: npz(p, logits=np.zeros((3, 10)), labels=np.array([0, 1, 99])), "labels outside"),
    (lambda p: (p.write_bytes(b"PK\x03\x04 not a zip"), p)[1], "unreadable"),
], ids=["huge-header", "pickle", "mismatch", "missing", "label-range", "not-zip"])
def test_hostile_predictions_are_one_line_errors(tmp_path, make, message):
    path = make(tmp_path / "predictions.npz")
    with pytest.raises(UserError, match=message) as err:
        runs.load_predictions(path)
    assert "\n" not in str(err.value)
