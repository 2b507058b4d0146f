"""Augmentation is seeded and real; preprocessing puts a drawn digit where MNIST puts it."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnistlab.data.augment import RandomAffine
from mnistlab.data.preprocess import load_image, to_mnist
from mnistlab.errors import UserError


def _digit_batch():
    x = torch.zeros(16, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0
    return x


def test_augmentation_is_seeded_and_changes_images():
    aug = RandomAffine(degrees=15, translate=0.1, scale=(0.9, 1.1))
    a = aug(_digit_batch(), torch.Generator().manual_seed(1))
    b = aug(_digit_batch(), torch.Generator().manual_seed(1))
    c = aug(_digit_batch(), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.allclose(a, _digit_batch())


def test_zero_ranges_are_identity_and_fill_is_kept():
    aug = RandomAffine(degrees=0, translate=0, scale=(1.0, 1.0), fill=-0.42)
    x = _digit_batch() - 0.42
    assert torch.allclose(aug(x, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_drawn_digit_is_inverted_cropped_and_centred():
    img = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(img).line([(60, 40), (100, 260)], fill="black", width=20)  # an off-centre stroke
    out = to_mnist(img)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out.max() == 255  # black background, white ink
    ys, xs = np.nonzero(out > 25)
    assert ys.max() - ys.min() + 1 <= 21 and xs.max() - xs.min() + 1 <= 21
    yy, xx = np.indices(out.shape)
    cy, cx = (yy * out).sum() / out.sum(), (xx * out).sum() / out.sum()
    assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5


def test_blank_image_gives_blank_digit():
    assert to_mnist(Image.new("L", (50, 50), 255)).max() == 0


def test_unreadable_and_missing_files_are_user_errors(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(UserError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(UserError, match="no such file"):
        load_image(tmp_path / "missing.png")
