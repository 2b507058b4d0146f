"""``python tests/stop_at_epoch.py EPOCH FOLDER mnistlab-args...``: mnistlab's command line, except that each
process, as it begins EPOCH, writes ``FOLDER/rank<RANK>`` and then waits to be killed.

A test can then kill a run at a known point (every earlier epoch saved, none of EPOCH) by waiting for
that file, where polling the run's history against a live run races the training.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mnistlab.cli import main
from mnistlab.training.progress import EpochProgress


def stop_at(epoch: int, folder: Path) -> None:
    """Make every process announce itself in ``folder`` and hold still as ``epoch`` begins."""
    real_start = EpochProgress.start_epoch

    def start_epoch(self, n: int, epochs: int, total: int) -> None:
        if n == epoch:
            (folder / f"rank{os.environ.get('RANK', '0')}").touch()
            while True:
                time.sleep(60)
        real_start(self, n, epochs, total)

    EpochProgress.start_epoch = start_epoch


if __name__ == "__main__":
    stop_at(int(sys.argv[1]), Path(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
