"""Model registry: ``create_model(name)``, ``list_models()``.

    >>> from mnistlab.models import create_model
    >>> create_model("resnet").__class__.__name__
    'ResNetCNN'

Importing this package registers every architecture module below.
"""

# Imported for their registration: each module registers its architecture.
from mnistlab.models import attention, deeper, dense, resnet, selfattention, separable, simple, speedrun  # noqa: F401
from mnistlab.models.registry import (  # noqa: F401
    IMAGE_SIZE,
    IN_CHANNELS,
    NUM_CLASSES,
    count_parameters,
    create_model,
    describe_models,
    list_models,
    register,
)
from mnistlab.models.complexity import count_macs  # noqa: F401

# The seed's parameter counts; every model must stay within ±5% of its target.
REFERENCE_PARAMS = {"simple": 93_322, "deeper": 523_978, "resnet": 285_066}
