"""Data sets: the built-in MNIST and Fashion-MNIST, and your own, added once with :func:`add`.

    >>> import mnistlab.data
    >>> callable(mnistlab.data.add)
    True

``mnistlab.data.add("letters", "emnist/", format="idx")`` does what ``mnistlab data add`` does
(:mod:`mnistlab.data.adding`); afterwards ``mnistlab.train(..., dataset="letters")`` and every
command's ``--dataset letters`` find it. Importing this package loads nothing else: ``add``
imports the readers (and torch) when it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add(name: str, path: str | Path, **options: Any) -> Any:
    """Import the data set at ``path`` into the store as ``name``; returns an :class:`~mnistlab.data.adding.Added`.

    Options as :func:`mnistlab.data.adding.add`: ``format``, ``size``, ``channels``, ``pipeline``,
    ``test_fraction``, ``data_dir``, ``force``.
    """
    from mnistlab.data.adding import add as add_data_set

    return add_data_set(name, path, **options)
