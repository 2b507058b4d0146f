"""Which layer of a model is its classifier, and how to start a model from another one's body.

    >>> from mnistlab.models import create_model
    >>> from mnistlab.models.heads import classifier_name, body_and_head
    >>> model = create_model("simple")
    >>> classifier_name(model)
    'head.3'
    >>> body, head = body_and_head(model)
    >>> [name for name, _ in head]
    ['head.3.weight', 'head.3.bias']

The convention every registered model follows (transfer learning relies on it):

* the **classifier** is the layer that produces the logits: a ``nn.Linear`` with ``num_classes``
  outputs whose result is returned unchanged by ``forward``;
* by default it is the *last* ``nn.Linear`` in registration order (``model.named_modules()``),
  which is the case whenever ``__init__`` creates the classifier after every other linear layer;
* a model whose last registered linear layer is not its classifier (an attention block created
  after the head, a classifier that is a 1×1 convolution) names it in a class attribute:
  ``classifier_name = "head.fc"`` (the dotted module path);
* the **body** is every other parameter (and buffer): what transfer learning carries over.

``tests/test_transfer_plan.py`` checks the convention on every registered model: zeroing the
classifier's weight and bias must make every logit zero.
"""

from __future__ import annotations

import torch
from torch import nn


def classifier_name(model: nn.Module) -> str:
    """The dotted module path of ``model``'s classifier (see the module docstring)."""
    declared = getattr(model, "classifier_name", None)
    modules = dict(model.named_modules())
    if declared is not None:
        if not isinstance(modules.get(declared), (nn.Linear, nn.Conv2d)):
            raise ValueError(f"{type(model).__name__}.classifier_name = {declared!r} is not a Linear or Conv2d module")
        return declared
    linears = [name for name, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear; set a classifier_name class attribute")
    return linears[-1]


def body_and_head(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """``model``'s named parameters split into (body, classifier)."""
    prefix = classifier_name(model) + "."
    body, head = [], []
    for name, p in model.named_parameters():
        (head if name.startswith(prefix) else body).append((name, p))
    return body, head


def is_head_key(model: nn.Module, key: str) -> bool:
    """Whether the state-dict entry ``key`` belongs to the classifier."""
    return key.startswith(classifier_name(model) + ".")


def load_body(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every entry of ``state`` but the classifier's into ``model``; returns the keys copied.

    Raises ``ValueError`` (with the first mismatch) when the body's names or shapes differ: the
    source must be the same architecture with the same model arguments and input size.
    """
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not is_head_key(model, k)}
    wanted = {k for k in own if not is_head_key(model, k)}
    missing, extra = sorted(wanted - set(body)), sorted(set(body) - wanted)
    if missing or extra:
        first = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ValueError(f"the source weights do not fit this model ({first})")
    for key, value in body.items():
        if value.shape != own[key].shape:
            shapes = f"{list(value.shape)} vs {list(own[key].shape)}"
            raise ValueError(f"the source weights do not fit this model ({key}: {shapes})")
    model.load_state_dict(body, strict=False)
    return sorted(body)
