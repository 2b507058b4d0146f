"""The best trial's settings as a preset file: ``mnistlab sweep --export-preset FILE``.

    >>> from mnistlab.sweep.space import parse_space
    >>> space = parse_space('[base]\\narch = "simple"\\n[search]\\nlr = [0.001, 0.003]\\n', "s.toml")
    >>> print(preset_text(space, {"lr": 0.003}, "trial 4 of study s, val acc 0.9912"), end="")
    # trial 4 of study s, val acc 0.9912
    # mnistlab train --preset-file FILE trains with these settings
    arch = "simple"
    lr = 0.003

The file is TOML that :func:`mnistlab.config.read_preset_file` reads back: the sweep's base (and
its preset, if it named one) with the trial's searched values on top, a bundle's settings in place
of its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from mnistlab.fileio import write_text
from mnistlab.sweep.space import SweepSpace
from mnistlab.sweep.summary import SweepResult


def toml_value(value: Any) -> str:
    """A setting's value as TOML writes it (settings are strings, numbers and booleans).

    >>> toml_value(True), toml_value(1e-05), toml_value("adamw")
    ('true', '1e-05', '"adamw"')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string of printable text is a TOML basic string


def preset_text(space: SweepSpace, params: Mapping[str, Any], title: str) -> str:
    lines = [f"# {title}", "# mnistlab train --preset-file FILE trains with these settings"]
    if space.preset != "default":
        lines.append(f"preset = {toml_value(space.preset)}")
    lines += [f"{name} = {toml_value(value)}" for name, value in space.settings(params).items()]
    return "\n".join(lines) + "\n"


def write_preset(path: str | Path, space: SweepSpace, result: SweepResult) -> None:
    best = result.best
    assert best is not None, "a preset needs a finished trial"
    write_text(path, preset_text(space, best.params, f"trial {best.number} of study {result.study}, "
                                                     f"val acc {best.value:.4f} ({best.run_dir})"))
