"""``--tensorboard``: each epoch's numbers and a few mistakes as TensorBoard event files.

    >>> board = EpochBoard(None)            # disabled: every call is a no-op
    >>> board.write_epoch({"epoch": 1, "train_loss": 0.5}, {}, None)

With a run directory, events go to ``<run>/tensorboard/`` so ``tensorboard --logdir runs`` shows
every run side by side. Tags: ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val``,
``lr``, ``samples_per_s``, ``grad_norm/<layer>`` (the epoch's mean L2 norm) and the image grid
``val/misclassified`` with its captions in the text ``val/misclassified``. The training loop
writes them for every framework, so PyTorch and Keras runs look the same there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mnistlab.errors import UserError

BOARD_DIR = "tensorboard"
SCALARS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/train": "train_acc",
           "accuracy/val": "val_acc", "lr": "lr", "samples_per_s": "samples_per_s"}
MISCLASSIFIED_SHOWN = 16


class EpochBoard:
    """A ``SummaryWriter`` on ``<run_dir>/tensorboard`` (or nothing when ``run_dir`` is None)."""

    def __init__(self, run_dir: Path | None, resume_epoch: int | None = None):
        self.writer = None
        if run_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package; pip install 'mnistlab[tensorboard]'") from None
        # purge_step hides the events a killed run logged after its last checkpoint.
        self.writer = SummaryWriter(str(Path(run_dir) / BOARD_DIR), purge_step=resume_epoch)

    def write_epoch(self, row: dict[str, float], grad_norms: dict[str, float],
                    mistakes: tuple[torch.Tensor, list[str]] | None) -> None:
        """Log one history row, the layers' gradient norms and (uint8 images, captions) of mistakes."""
        if self.writer is None:
            return
        epoch = int(row["epoch"])
        for tag, key in SCALARS.items():
            if key in row:
                self.writer.add_scalar(tag, row[key], epoch)
        for layer, norm in grad_norms.items():
            self.writer.add_scalar(f"grad_norm/{layer}", norm, epoch)
        if mistakes is not None and len(mistakes[0]):
            images, captions = mistakes
            self.writer.add_images("val/misclassified", images.unsqueeze(1).cpu(), epoch, dataformats="NCHW")
            self.writer.add_text("val/misclassified", "  \n".join(captions), epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
