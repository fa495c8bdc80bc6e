"""Imports every course family module so that each registers its builders.

The torchvision and timm adapters are not imported here: the registry imports them on the first
``tv/``, ``timm/`` or ``efficientnet_lite0`` request (``_registry._LAZY``)."""

from visionsuite.backbones import (  # noqa: F401
    alexnet,
    googlenet,
    lenet,
    linear,
    mlp,
    mobilenet,
    resnet,
    vgg,
)
