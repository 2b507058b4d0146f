"""Where data lives on disk: the user cache and the store a user's own data sets are added to.

    >>> import os
    >>> cache_root().name
    'mnistlab'
    >>> store_root("/tmp/my-store")
    PosixPath('/tmp/my-store')

The store is ``--data-dir``, else ``$MNISTLAB_DATA_DIR``, else the cache: the folders the built-in
data sets are searched in first, so one setting points every command at the same data.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/mnistlab``, else ``~/.cache/mnistlab``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnistlab"


def store_root(data_dir: str | Path | None = None) -> Path:
    """The folder holding the data sets a user added: ``data_dir``, ``$MNISTLAB_DATA_DIR``, or the cache."""
    base = data_dir if data_dir is not None else os.environ.get("MNISTLAB_DATA_DIR") or None
    return Path(base).expanduser() if base is not None else cache_root()
