"""The command line: exit codes, one-line errors, JSON-only stdout with --json, options generated from TrainConfig."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mnistlab.cli import main
from mnistlab.data.datasets import load_test_split


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    rows = {m["name"]: m for m in json.loads(out)}
    assert {"simple", "deeper", "resnet", "separable", "dense", "attention"} <= set(rows)
    assert rows["simple"]["macs"] == 2_794_240  # multiply-adds per image, for every model
    assert all(isinstance(r["macs"], int) and r["macs"] > r["params"] for r in rows.values())
    code, out, _ = run(capsys, "models")
    assert code == 0 and "MACs" in out and "2,794,240" in out


def test_train_without_arch_is_a_usage_error(capsys):
    code, out, err = run(capsys, "train")
    assert code == 2 and out == ""
    assert "--arch is required" in err and len(err.strip().splitlines()) == 1


def test_unknown_arch_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--arch", "vgg"])
    assert exc.value.code == 2


def test_evaluate_unknown_path(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", str(tmp_path / "nope"))
    assert code == 2 and "no such run directory" in err


def test_evaluate_json_prints_only_json(capsys, trained_run):
    code, out, _ = run(capsys, "evaluate", str(trained_run), "--json")
    assert code == 0
    assert json.loads(out)["n_samples"] == 10_000


def test_existing_out_needs_force(capsys, trained_run):
    code, _, err = run(capsys, "train", "--arch", "simple", "--out", str(trained_run))
    assert code == 2 and "--force" in err


def _paper_digits(tmp_path, n=10):
    """MNIST test digits drawn as dark ink on white paper at 4× size, as a user would give them."""
    images, labels = load_test_split("mnist", purpose="digits a user would draw, for predict")
    paths = []
    for i in range(n):
        img = Image.fromarray(255 - images[i].numpy()).resize((112, 112), Image.Resampling.BILINEAR)
        path = tmp_path / f"digit{i}.png"
        img.save(path)
        paths.append(str(path))
    return paths, labels[:n].numpy()


def test_predict_json_classifies_user_images(capsys, trained_run, tmp_path):
    paths, labels = _paper_digits(tmp_path)
    code, out, _ = run(capsys, "predict", str(trained_run), *paths, "--json")
    assert code == 0
    results = json.loads(out)
    assert [r["file"] for r in results] == paths
    assert all(len(r["probabilities"]) == 10 and abs(sum(r["probabilities"]) - 1) < 1e-3 for r in results)
    assert (np.array([r["digit"] for r in results]) == labels).sum() >= 8


@pytest.mark.parametrize("content", [None, b"this is not an image"])
def test_predict_bad_file_exit_2(capsys, trained_run, tmp_path, content):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "predict", str(trained_run), str(path))
    assert code == 2 and out == "" and str(path) in err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mnistlab", "evaluate", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not a run directory" in proc.stderr


def _choices(parser, command, option):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return list(next(a for a in sub._actions if option in a.option_strings).choices)


def _help(parser, command, option):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if option in a.option_strings).help


def test_an_unknown_data_set_is_one_line_naming_the_choices(capsys):
    from mnistlab.cli import main

    assert main(["train", "--arch", "simple", "--dataset", "nope", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown data set 'nope'" in err and "mnist" in err and "mnistlab data add nope PATH" in err


def test_choices_come_from_the_registries():
    from mnistlab.cli import build_parser
    from mnistlab.data.datasets import list_datasets
    from mnistlab.frameworks import FRAMEWORKS
    from mnistlab.models import list_models

    parser = build_parser()
    # --dataset has no fixed choices: a data set added to the store is known once --data-dir is parsed;
    # the registry names them when a name is unknown.
    assert all(name in _help(parser, "train", "--dataset") + _help(parser, "data", "--dataset")
               for name in list_datasets())
    assert _choices(parser, "train", "--framework") == list(FRAMEWORKS)
    assert _choices(parser, "train", "--arch") == _choices(parser, "frameworks", "--arch") == list_models()


def test_every_subcommand_lives_in_commands_and_none_imports_the_cli():
    """cli.py builds the parser from commands/*; no command module reaches back into cli.py."""
    import ast
    import importlib
    from pathlib import Path

    from mnistlab import cli

    parser_commands = set(next(a for a in cli.build_parser()._actions if a.dest == "command").choices)
    owners = set()
    for module in cli.COMMAND_MODULES:
        source = Path(importlib.import_module(module).__file__).read_text()
        imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
        assert "mnistlab.cli" not in imported, module
        owners |= {n.args[0].value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
                   and getattr(n.func, "id", "") == "command" and isinstance(n.args[0], ast.Constant)}
    assert parser_commands == owners and {"data", "models", "train", "evaluate", "predict", "quickstart"} <= owners


def test_a_format_the_runs_framework_lacks_says_why_not_in_one_line(capsys, trained_run):
    code, out, err = run(capsys, "export", str(trained_run), "--format", "litert")
    assert code == 2 and out == "" and "for Keras runs" in err and len(err.strip().splitlines()) == 1


def _help_lines(monkeypatch, command):
    """``mnistlab COMMAND --help`` with one line per option (a wide terminal: no wrapping)."""
    from mnistlab.cli import build_parser

    monkeypatch.setenv("COLUMNS", "2000")
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return sub.format_help().splitlines(), sub.format_usage()


def _option_line(lines, flag):
    """The option's line and, where its names are too long to share a line with the help, the next one."""
    i = next(i for i, line in enumerate(lines) if line.lstrip().split(" ")[0].rstrip(",") == flag)
    follows = i + 1 < len(lines) and lines[i + 1].startswith(" " * 8)
    return lines[i] + (lines[i + 1] if follows else "")


# What `train --help` must say of some defaults, written out by hand (the rest follow the same rule).
SHOWN_DEFAULTS = {
    "--batch-size": "(default: 128; --preset speedrun: 256)",
    "--lr": "(default: 0.003; --preset seed: 0.001, speedrun: 0.01; --dataset fashion-mnist: 0.006)",
    "--augment": "(default: on;", "--threads": "(default: all cores)", "--train-subset": "(default: all)",
    "--optimizer": "(default: adam)", "--arch": "(required unless --resume; --preset speedrun: speedrun, best: deeper)",
}


def test_every_training_field_is_a_train_option_with_its_default(monkeypatch):
    from mnistlab.config import TrainConfig

    lines, _ = _help_lines(monkeypatch, "train")
    options = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_args", "transfer"}
    for name in options:
        line = _option_line(lines, "--" + name.replace("_", "-"))
        assert f"{TrainConfig.__dataclass_fields__[name].metadata['help']} (" in line
        assert "(default: " in line or name == "arch", line
    for flag, text in SHOWN_DEFAULTS.items():
        assert text in _option_line(lines, flag)
    assert not any("--model-args" in line or "--transfer" in line for line in lines)


def test_train_usage_names_what_is_required(monkeypatch):
    lines, usage = _help_lines(monkeypatch, "train")
    assert "(--arch NAME | --preset speedrun|best | --resume RUN_DIR)" in usage and "[--arch" not in usage
    assert "what to train (one is required):" in lines


@pytest.mark.parametrize("argv, field, value", [
    (["--epochs", "3"], "epochs", 3),                       # int
    (["--train-subset", "500"], "train_subset", 500),       # int | None
    (["--lr", "0.02"], "lr", 0.02),                         # float
    (["--beta1", "0.8"], "beta1", 0.8),                     # float | None
    (["--no-augment"], "augment", False),                   # bool
    (["--tensorboard"], "tensorboard", True),
    (["--no-channels-last"], "channels_last", False),
    (["--optimizer", "adamw"], "optimizer", "adamw"),       # config's choices
    (["--device", "cpu"], "device", "cpu"),
    (["--dataset", "fashion-mnist"], "dataset", "fashion-mnist"),  # a registry's choices
    (["--arch", "resnet"], "arch", "resnet"),
    (["--preset", "seed", "--lr", "0.02"], "lr", 0.02),     # a flag wins over the preset
    (["--preset", "seed"], "lr", 1e-3),                     # no flag: the preset's value stands
])
def test_a_flag_reaches_the_train_config(argv, field, value):
    from mnistlab.cli import build_parser
    from mnistlab.commands.train import train_config_from_args

    cfg = train_config_from_args(build_parser().parse_args(["train", "--arch", "simple", *argv]))
    assert getattr(cfg, field) == value
    assert type(getattr(cfg, field)) is type(value)


def test_every_option_of_every_command_has_help():
    from mnistlab.cli import build_parser

    for name, sub in next(a for a in build_parser()._actions if a.dest == "command").choices.items():
        assert [a.option_strings for a in sub._actions if a.option_strings and not a.help] == [], name


def test_commands_that_write_share_one_set_of_output_options():
    from mnistlab.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in ("train", "quickstart", "ensemble-train", "transfer", "transfer-curve", "frameworks"):
        groups = {g.title: {o for a in g._group_actions for o in a.option_strings}
                  for g in commands[name]._action_groups}
        assert groups["output"] == {"--out", "--force", "--quiet"}, name


def test_data_info_is_a_summary_without_json_and_json_with_it(capsys, data_dir):
    code, out, _ = run(capsys, "data", "info")
    assert code == 0 and "60,000 training and 10,000 test images" in out and "5,923" in out
    assert "{" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    code, out, _ = run(capsys, "data", "info", "--json")
    assert code == 0 and json.loads(out)["mnist"]["train"]["count"] == 60_000


def test_predict_help_names_every_accepted_format(monkeypatch):
    from mnistlab.data.images import ACCEPTED_FORMATS

    lines, _ = _help_lines(monkeypatch, "predict")
    help_text = " ".join(lines).lower()
    assert len(ACCEPTED_FORMATS) == 6 and all(fmt.lower() in help_text for fmt in ACCEPTED_FORMATS)
