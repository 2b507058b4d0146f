"""Helpers for the service tests: a fake model (instant, for the bad-input cases), clients, test pictures."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = [str(k) for k in range(10)]


def fake_logits(images: np.ndarray) -> np.ndarray:
    """A stand-in model: the class is the image's mean brightness // 10 mod 10 (so answers differ per image)."""
    images = np.asarray(images)
    k = (images.reshape(len(images), -1).mean(1) // 10).astype(int) % 10
    out = np.zeros((len(images), 10), np.float32)
    out[np.arange(len(images)), k] = 5.0
    return out


def fake_holder(logits=fake_logits, name="fake"):
    from mnistlab.runconfig import DataFacts, RunConfig
    from mnistlab.serve.model import ModelHolder

    # An ensemble's config: like the fake model, it offers no Grad-CAM (there is no network to explain).
    config = RunConfig(kind="ensemble", framework="ensemble", dataset="mnist",
                       data=DataFacts(class_names=tuple(CLASSES), num_classes=len(CLASSES)))
    info = {"name": name, "arch": "fake", "framework": "fake", "kind": "train", "dataset": "mnist", "params": 0,
            "test_accuracy": None, "trained": None, "class_names": CLASSES}
    return ModelHolder(name, Path("."), config, logits, "torch", info)


def make_client(holder=None, **settings):
    from fastapi.testclient import TestClient

    from mnistlab.serve.app import create_app
    from mnistlab.serve.settings import ServeSettings

    return TestClient(create_app(ServeSettings("unused", **settings), holder or fake_holder()))


def png(array_or_image, fmt="PNG") -> bytes:
    img = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(np.asarray(array_or_image))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def paper_digit(image28: np.ndarray, size: int = 140) -> bytes:
    """An MNIST test image as a user would send it: dark ink on white paper, larger, PNG."""
    return png(Image.fromarray(255 - image28).resize((size, size), Image.Resampling.BILINEAR))




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(run_dir: Path, *args: str):
    """``mnistlab serve RUN --port P ARGS`` in a subprocess, once /healthz answers 200; yields (process,
    port); stopped with SIGINT (Ctrl-C), killed if it has not ended 30 s later."""
    import pytest

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_API_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", str(run_dir), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:  # not listening yet, or an HTTP error status (urllib's HTTPError is an OSError)
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}")
            time.sleep(0.2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def serve_process(run_dir: Path):
    """``mnistlab serve RUN --port P`` in a subprocess; yields the base URL."""
    with server_process(run_dir) as (_, port):
        yield f"http://127.0.0.1:{port}"
