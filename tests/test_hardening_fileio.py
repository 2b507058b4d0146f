"""Atomic writes reach the disk: the temp file is fsynced before the rename, the folder after it."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from mnistlab import fileio, runs


@pytest.fixture
def events(monkeypatch):
    """Record fsync (of a file or a folder) and os.replace calls, in order."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append(("fsync-" + kind, os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        seen.append(("replace", str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    monkeypatch.setattr(fileio.os, "replace", replace)
    return seen


@pytest.mark.parametrize("write", [
    lambda p: fileio.write_json(p, {"a": 1}),
    lambda p: fileio.write_with(p, lambda tmp: torch.save({"w": torch.zeros(3)}, tmp)),  # checkpoints
    lambda p: runs.save_predictions(p, np.zeros((2, 10)), np.zeros(2)),
], ids=["json", "torch.save", "npz"])
def test_file_then_rename_then_folder_are_synced(tmp_path, events, write):
    target = tmp_path / "out.bin"
    write(target)
    kinds = [k for k, _ in events]
    assert kinds == ["fsync-file", "replace", "fsync-dir"], events
    assert events[0][1].startswith(str(tmp_path / ".out.bin."))  # the temp file, before the rename
    assert events[2][1] == str(tmp_path)
    assert target.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_writer_leaves_nothing(tmp_path):
    def boom(_tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        fileio.write_with(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []
