"""Architectures of the zoo (``converters.zoo``), one module per family.

Importing this package registers every model; ``converters.zoo`` imports it on
first use. The explicit list keeps registration order (and ``zoo.names()``) stable.
"""
from converters.zoo_models import (  # noqa: F401
    mobilenet,
    resnet,
    efficientnet,
    shufflenet,
    squeezenet,
    unet,
    transformer,
    recurrent,
    dynamic,
)
