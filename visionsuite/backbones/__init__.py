"""The shared backbone library: every network of every task, created by name.

>>> from visionsuite.backbones import create_backbone, list_backbones
>>> model = create_backbone("lenet5", num_classes=10, in_chans=1)
>>> encoder = create_encoder("resnet18", out_strides=(2, 4, 8, 16, 32))  # OrderedDict of maps

Detection necks: ``visionsuite.backbones.fpn.backbone_with_fpn`` (torchvision's FPN).
"""

from visionsuite.backbones._base import Backbone, FeatureInfo
from visionsuite.backbones._builder import load_pretrained
from visionsuite.backbones._registry import (
    UnknownBackboneError,
    create_backbone,
    create_encoder,
    get_builder,
    list_backbones,
    register_backbone,
)
from visionsuite.backbones.encoder import Encoder, NoEncoderError
from visionsuite.backbones.weights import (
    UnsafeWeightsError,
    WeightsMismatchError,
    load_weights,
    safe_load,
)

__all__ = [
    "Backbone",
    "Encoder",
    "FeatureInfo",
    "NoEncoderError",
    "create_encoder",
    "load_pretrained",
    "UnknownBackboneError",
    "create_backbone",
    "get_builder",
    "list_backbones",
    "load_weights",
    "register_backbone",
    "safe_load",
    "UnsafeWeightsError",
    "WeightsMismatchError",
]
