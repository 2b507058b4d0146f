"""mnistlab: trustworthy, fast convolutional digit classifiers on MNIST and Fashion-MNIST.

    >>> from mnistlab.models import create_model, list_models
    >>> sorted(list_models())[:1]
    ['deeper']
"""

__version__ = "0.1.0"
