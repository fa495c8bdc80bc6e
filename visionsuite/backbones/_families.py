"""Imports every backbone family module so that each registers its builders."""

from visionsuite.backbones import (  # noqa: F401
    alexnet,
    googlenet,
    lenet,
    linear,
    mlp,
    mobilenet,
    resnet,
    timm_adapter,
    torchvision_adapter,
    vgg,
)
