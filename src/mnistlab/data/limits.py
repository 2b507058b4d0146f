"""The bounds of one import (``mnistlab data add``): what a data set from someone else may cost.

    >>> MAX_IMAGES, MAX_SOURCE_BYTES // 2**30
    (1000000, 2)

Named in every refusal they cause, so a user knows what to split or shrink.
"""

MAX_IMAGES = 1_000_000  # EMNIST ByClass, the largest of the MNIST family, has 814,255
MAX_SOURCE_BYTES = 2 * 2**30  # a file read for an import, or all the pictures of a folder together
