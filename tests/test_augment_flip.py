"""Left-right mirroring (``--hflip``), the augmentation flags, and each data set's own training defaults."""

import pytest
import torch

from mnistlab.cli import build_parser
from mnistlab.commands.train import train_config_from_args
from mnistlab.config import TrainConfig, preset
from mnistlab.data.augment import Chain, RandomAffine, RandomErasing, RandomFlip
from mnistlab.data.datasets import load_train_val
from mnistlab.errors import UserError
from mnistlab.training.loop import make_augment


def test_flip_mirrors_exactly_the_chosen_images():
    x = torch.arange(16 * 28 * 28, dtype=torch.float32).view(16, 1, 28, 28)
    out = RandomFlip(p=0.5)(x, torch.Generator().manual_seed(3))
    mirrored = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, x)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, x)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image either mirrored or untouched
    assert 0 < sum(mirrored) < 16  # p = 0.5 over 16 images: some of each (this seed)
    again = RandomFlip(p=0.5)(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # seeded: a resumed run replays the same flips
    assert torch.equal(RandomFlip(p=1.0)(x, torch.Generator()), x.flip(-1))
    assert torch.equal(RandomFlip(p=0.0)(x, torch.Generator()), x)


def test_flip_sits_between_the_affine_and_the_erasing(data_dir):
    data = load_train_val("fashion-mnist", val_size=100, train_subset=200)
    chain = make_augment(TrainConfig(dataset="fashion-mnist", hflip=0.5, erasing=0.25), data)
    assert isinstance(chain, Chain)
    assert [type(t) for t in chain.transforms] == [RandomAffine, RandomFlip, RandomErasing]
    assert isinstance(make_augment(TrainConfig(), data), RandomAffine)  # off by default: digits are not mirrored
    assert preset("default").hflip == 0.0 and preset("best").hflip == 0.0
    # No rotation, shift or zoom: no affine at all (it would draw numbers and resample for nothing).
    flip_only = make_augment(TrainConfig(dataset="fashion-mnist", degrees=0, translate=0, scale=0, hflip=0.5), data)
    assert isinstance(flip_only, RandomFlip)
    assert make_augment(TrainConfig(degrees=0, translate=0, scale=0), data) is None


@pytest.mark.parametrize("bad", [dict(hflip=1.5), dict(hflip=-0.1), dict(translate=0.6), dict(scale=1.0)])
def test_bad_augmentation_ranges_are_user_errors(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


def test_hflip_translate_and_scale_reach_the_config_from_the_command_line():
    parse = build_parser().parse_args
    cfg = train_config_from_args(parse(["train", "--dataset", "fashion-mnist", "--hflip", "0.5", "--translate", "0.05",
                                        "--scale", "0", "--degrees", "0"]))
    assert (cfg.hflip, cfg.translate, cfg.scale, cfg.degrees) == (0.5, 0.05, 0.0, 0.0)
    with pytest.raises(UserError, match="--hflip must be between 0 and 1"):
        train_config_from_args(parse(["train", "--hflip", "2"]))


def test_fashion_trains_with_its_own_recipe_under_presets_and_flags():
    parse = build_parser().parse_args
    fashion = train_config_from_args(parse(["train", "--dataset", "fashion-mnist"]))
    # A mirror, no rotation, shift or zoom; label smoothing, the checkpoint on validation accuracy.
    assert fashion.augment is True and fashion.hflip == 0.5 and (fashion.degrees, fashion.translate, fashion.scale) == (0, 0, 0)
    assert fashion.label_smoothing == 0.1 and fashion.monitor == "val_acc" and fashion.lr == 6e-3
    assert train_config_from_args(parse(["train", "--dataset", "fashion-mnist", "--no-augment"])).augment is False
    rotated = train_config_from_args(parse(["train", "--dataset", "fashion-mnist", "--degrees", "10"]))
    assert (rotated.degrees, rotated.hflip) == (10, 0.5)  # a flag wins over the data set's default
    digits = train_config_from_args(parse(["train"]))  # digits keep theirs: no mirror, no smoothing
    assert digits.augment is True and digits.hflip == 0 and digits.degrees == 10 and digits.label_smoothing == 0
    assert preset("speedrun").augment is False and preset("best", dataset="fashion-mnist").monitor == "val_loss"
    assert train_config_from_args(parse(["train", "--dataset", "fashion-mnist", "--lr", "1e-3"])).lr == 1e-3
    assert preset("best", dataset="fashion-mnist").lr == 3e-3 and preset("default").lr == 3e-3


def test_quickstart_gives_each_data_set_its_own_epoch_caps():
    from mnistlab.experiments.quickstart import EPOCHS, MODELS, max_epochs

    mnist = [max_epochs("mnist", name, name.split(":")[-1]) for name in MODELS]
    fashion = [max_epochs("fashion-mnist", name, name.split(":")[-1]) for name in MODELS]
    assert mnist == [EPOCHS["simple"], EPOCHS["deeper"], EPOCHS["resnet"], EPOCHS["simple"]]
    assert fashion == [7, 2, 8, 4]


def test_quickstart_gives_each_data_set_its_models_and_test_time_views():
    from mnistlab.experiments.quickstart import MODELS, default_models, evaluation_images, tta_settings

    assert default_models("mnist") == MODELS and default_models("fashion-mnist") == ("simple", "resnet", "keras:simple")
    assert build_parser().parse_args(["quickstart"]).models is None  # so the data set's own list applies
    # Fashion-MNIST: the mirror votes where it wins on validation; digits never see one.
    assert tta_settings("fashion-mnist") == {"tta": "auto", "tta_candidates": ("flip",)}
    assert tta_settings("mnist") == tta_settings("fashion-mnist", smoke=True) == {"tta": "off"}
    # The budget counts those views: validation plain + mirrored, test with the mirror.
    assert evaluation_images("fashion-mnist", 5000) == 5000 * 3 + 10_000 * 2
    assert evaluation_images("mnist", 5000) == 15_000


def test_quickstart_on_fashion_uses_the_data_sets_defaults(tmp_path, data_dir):
    from mnistlab.experiments.quickstart import quickstart
    from mnistlab.runs import read_config

    quickstart(tmp_path / "qs", smoke=True, dataset="fashion-mnist", data_dir=str(data_dir), progress=False,
               models=("simple",))
    train = read_config(tmp_path / "qs" / "simple").train
    assert train.augment is True and train.hflip == 0.5 and (train.degrees, train.translate, train.scale) == (0, 0, 0)
    assert train.label_smoothing == 0.1 and train.monitor == "val_acc" and train.lr == 6e-3
