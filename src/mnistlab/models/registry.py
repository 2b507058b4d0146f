"""Models by name: ``create_model``, ``list_models`` and the ``register`` decorator.

    >>> from mnistlab.models import create_model, list_models
    >>> model = create_model("simple")
    >>> "simple" in list_models()
    True

Every registered factory takes ``in_channels``, ``num_classes`` and ``image_size`` keyword
arguments (plus its own) and returns an ``nn.Module`` whose ``forward`` returns **logits**.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from mnistlab.errors import UserError

# Both data sets have ten classes of 28×28 grey images; every factory takes these as defaults
# and any other size as keyword arguments (the data registry says what each data set needs).
NUM_CLASSES = 10
IMAGE_SIZE = 28
IN_CHANNELS = 1

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str = "") -> Callable:
    """Class or function decorator that adds a model factory under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().splitlines()[0]
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def describe_models() -> dict[str, str]:
    """Name → one-line description, for ``--help`` and ``mnistlab models``."""
    return {name: _DESCRIPTIONS[name] for name in list_models()}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` with ``kwargs`` passed to its factory."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None
    return factory(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the number the README and reports quote)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
