"""What a transfer run trains, epoch by epoch: frozen layers and one learning rate per group.

    >>> from mnistlab.models import create_model
    >>> plan = TransferPlan(create_model("simple"), {"mode": "features", "recipe": "frozen"}, epochs=10)
    >>> [(len(g["params"]), g["lr_scale"]) for g in plan.param_groups()]
    [(2, 1.0)]
    >>> plan.body_frozen(1), plan.body_frozen(10)
    (True, True)

A plan is made from a run's ``transfer`` setting (``TrainConfig.transfer = {mode, recipe}``;
:data:`mnistlab.config.TRANSFER_RECIPES` says what each recipe means) and handed to
:class:`~mnistlab.training.torch_step.TorchStep`, which builds its optimiser from
:meth:`param_groups` and calls :meth:`begin_epoch` after putting the model in training mode:

* **frozen body** (``features``; the first epochs of ``head-first``): the body's parameters get
  ``requires_grad = False`` (no gradient is computed for them, so Adam leaves them alone) and
  every body module is put in eval mode, so batch-norm statistics stay the source's and dropout
  is off: the body is a fixed feature extractor and only the classifier learns;
* **per-group learning rates** (``lower-body``): the body's group runs at a fraction of ``lr``
  (OneCycle and StepLR scale each group's rate the same way);
* ``all`` (``finetune`` and ``scratch``): one group, one learning rate.

The plan depends only on the epoch number, so a resumed run freezes exactly what the
uninterrupted run froze.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from mnistlab.config import TRANSFER_RECIPES, check_transfer
from mnistlab.models.heads import body_and_head, classifier_name


class TransferPlan:
    """The param groups and per-epoch freezing of a run whose ``transfer`` setting is ``transfer``."""

    def __init__(self, model: nn.Module, transfer: dict[str, str], epochs: int):
        check_transfer(transfer)
        self.model, self.mode, self.recipe = model, transfer["mode"], transfer["recipe"]
        self.body_lr_scale, head_fraction = TRANSFER_RECIPES[self.recipe]
        # head-first freezes at least one epoch and always leaves one to train everything
        self.frozen_epochs = epochs if head_fraction >= 1 else min(epochs - 1, math.ceil(head_fraction * epochs))
        self.body, self.head = body_and_head(model)
        self.head_module = classifier_name(model)
        for _, p in self.body:  # as in epoch 1 already: a body frozen for good is not even watched for gradients
            p.requires_grad_(not self.body_frozen(1))

    def body_frozen(self, epoch: int) -> bool:
        return epoch <= self.frozen_epochs

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups: ``params`` and ``lr_scale`` (the group's rate = ``lr × lr_scale``)."""
        head = {"params": [p for _, p in self.head], "lr_scale": 1.0, "name": "head"}
        if self.body_lr_scale == 0:
            return [head]  # never trained: not even handed to the optimiser
        if self.body_lr_scale == 1:
            return [{"params": [p for _, p in self.body] + head["params"], "lr_scale": 1.0, "name": "all"}]
        return [{"params": [p for _, p in self.body], "lr_scale": self.body_lr_scale, "name": "body"}, head]

    def begin_epoch(self, epoch: int) -> None:
        """Freeze or unfreeze the body for ``epoch`` (call after ``model.train()``)."""
        frozen = self.body_frozen(epoch)
        for _, p in self.body:
            p.requires_grad_(not frozen)
        if frozen:
            for name, module in self.model.named_modules():
                if name and not (name == self.head_module or self.head_module.startswith(name + ".")):
                    module.eval()  # not the classifier nor a container of it: BN statistics fixed, dropout off
