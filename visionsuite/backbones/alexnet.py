"""AlexNet as the course teaches it (Krizhevsky, Sutskever & Hinton, 2012), on one device.

227x227x3 → conv1 96@11x11/4 (55x55) → LRN → maxpool 3/2 (27x27) → conv2 256@5x5 pad 2 → LRN
→ maxpool (13x13) → conv3 384, conv4 384, conv5 256 @3x3 pad 1 → maxpool (6x6x256)
→ FC 4096 → FC 4096 → FC classes, dropout 0.5 after the two hidden FC layers.

Unlike the paper's two-GPU network there is no grouping (conv2, conv4 and conv5 see every input
channel), which gives the course's 62,378,344 parameters for 1000 classes. Response normalisation
follows conv1 and conv2 and precedes their pooling (paper §3.5). The head pools adaptively to 6x6
(as torchvision does) so that inputs other than 227x227 work.

Stages are named by their stride, ``stage{k}`` having stride 2**k:
``stage2`` (conv1, stride 4), ``stage3`` (pool1 + conv2, 8), ``stage4`` (pool2 + conv3-5, 16),
``stage5`` (pool5, 32).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import (
    ClassifierHead,
    activation_factory,
    build_with_options,
    conv_norm_act,
    init_weights,
    make_pool,
    response_norm,
    smallest_input,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()

#: (kernel, stride, padding) of every layer that changes the spatial size, in order.
_GEOMETRY = [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]


class AlexNet(Backbone):
    """Five convolutions and three fully connected layers; see the module docstring."""

    default_input_size = (3, 227, 227)
    min_input_size = (smallest_input(_GEOMETRY),) * 2  # 67x67: pool5 needs a 3x3 window

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        activation: str = "relu",
        negative_slope: float = 0.01,
        norm: str = "none",
        lrn: bool = True,
        pooling: str = "max",
        padding_mode: str = "zeros",
        dropout: float = 0.5,
        init: str = "default",
    ) -> None:
        super().__init__()
        act = activation_factory(activation, negative_slope=negative_slope)
        conv = partial(conv_norm_act, norm=norm, act=act, padding_mode=padding_mode)
        pool = partial(make_pool, pooling, 3, 2)
        lrn_layers = (lambda: [response_norm()]) if lrn else list
        self.stages["stage2"] = nn.Sequential(conv(in_chans, 96, 11, stride=4, padding=0), *lrn_layers())
        self.stages["stage3"] = nn.Sequential(pool(), conv(96, 256, 5, padding=2), *lrn_layers())
        self.stages["stage4"] = nn.Sequential(pool(), conv(256, 384, 3), conv(384, 384, 3), conv(384, 256, 3))
        self.stages["stage5"] = nn.Sequential(pool())
        self.feature_info = [
            FeatureInfo("stage2", 4, 96),
            FeatureInfo("stage3", 8, 256),
            FeatureInfo("stage4", 16, 256),
            FeatureInfo("stage5", 32, 256),
        ]
        self.head = ClassifierHead(256, num_classes, hidden=(4096, 4096), pool_size=6, dropout=dropout, act=act)
        self.default_input_size = (in_chans, 227, 227)
        self.num_features = 256
        self.num_classes = num_classes
        init_weights(self, init)  # "default" keeps PyTorch's initialisation, as torchvision does


@BACKBONES.add("alexnet")
def alexnet(*, num_classes: int = 1000, in_chans: int = 3, **options) -> AlexNet:
    """The course's single-tower AlexNet (62,378,344 parameters for 1000 classes)."""
    return build_with_options(AlexNet, {"num_classes": num_classes, "in_chans": in_chans, **options})
