"""A private PostgreSQL server for the sweep tests: initdb in a temporary folder, 127.0.0.1 on a free port.

Debian's ``postgresql`` package puts its programs in /usr/lib/postgresql/<version>/bin; initdb and
the server refuse to run as root, so under root they run as the ``postgres`` user (runuser), in a
folder that user owns. Without the programs the tests that need them skip, saying so.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres; None when PostgreSQL is not installed."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)),
                                           None)
    return Path(found).resolve().parent if found else None  # a link in /usr/local/bin: its folder has them all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql+psycopg2://sweep:PASSWORD@127.0.0.1:PORT/optuna`` on a server that lives for the module."""
    pytest.importorskip("psycopg2", reason="needs mnistlab[sweep] (psycopg2-binary)")
    bins = bin_dir()
    if bins is None:
        pytest.skip("PostgreSQL's programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    root = Path(tempfile.mkdtemp(prefix="mnistlab-pg-"))  # not under pytest's root-only tmp: the server user reads it
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    # A password over TCP, as on a shared server: the sweep must carry it to its workers without writing it down.
    password = secrets.token_hex(12)
    (root / "pw").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root / "pw", "postgres", "postgres")
    env = {**os.environ, "PGPASSWORD": password}
    run = lambda *argv: subprocess.run(_as_server_user([*argv]), check=True, capture_output=True, env=env)  # noqa: E731
    run(str(bins / "initdb"), "-D", str(data), "-U", "sweep", "--auth-local=trust", "--auth-host=scram-sha-256",
        f"--pwfile={root / 'pw'}", "-E", "UTF8")
    server = subprocess.Popen(_as_server_user([str(bins / "postgres"), "-D", str(data), "-p", str(port), "-k",
                                               str(root), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(bins / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, "the PostgreSQL server did not start"
            time.sleep(0.2)
        run(str(bins / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "sweep", "optuna")
        yield f"postgresql+psycopg2://sweep:{password}@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(_as_server_user([str(bins / "pg_ctl"), "stop", "-D", str(data), "-m", "fast"]),
                       capture_output=True)
        try:
            server.wait(timeout=60)
        finally:
            shutil.rmtree(root, ignore_errors=True)
