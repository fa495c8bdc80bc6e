"""Imports every backbone family module so that each registers its builders."""

import importlib
import logging

_FAMILY_MODULES = (
    "linear",
    "mlp",
    "lenet",
    "alexnet",
    "vgg",
    "resnet",
    "googlenet",
    "mobilenet",
    "torchvision_adapter",
    "timm_adapter",
)

for _module in _FAMILY_MODULES:
    try:
        importlib.import_module(f"visionsuite.backbones.{_module}")
    except ModuleNotFoundError as err:  # a family still being written, or an optional dependency missing
        if err.name != f"visionsuite.backbones.{_module}":
            raise
        logging.getLogger(__name__).debug("backbone family %s not present", _module)
