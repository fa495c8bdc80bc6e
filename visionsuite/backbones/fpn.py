"""A backbone plus torchvision's Feature Pyramid Network, in the form torchvision's detectors take.

torchvision's ``BackboneWithFPN`` wants a body returning an ordered dict and an ``out_channels``
int; the library's encoder already is such a body, so this module only stacks the two
(Lin et al., 2017). ``FasterRCNN(backbone_with_fpn("resnet18"), num_classes=3)`` runs as is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Literal

from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import (
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from visionsuite.backbones._registry import create_encoder
from visionsuite.backbones.encoder import Encoder
from visionsuite.errors import ConfigError

ExtraBlock = Literal["maxpool", "p6p7", "none"]


class BackboneWithFPN(nn.Module):
    """``encoder`` → FPN: every level mapped to ``out_channels`` channels, plus the extra levels
    (``"maxpool"``: a stride-2 pool of the last, "pool", as Faster R-CNN; ``"p6p7"``: two strided
    convs, as RetinaNet). ``forward`` returns ``OrderedDict[str, Tensor]`` keyed as torchvision's
    own ``BackboneWithFPN`` (``"0"``, ``"1"`` … shallow to deep, then ``"pool"`` or ``"p6"``,
    ``"p7"``), the names its detectors' RoI poolers look up by default."""

    def __init__(self, encoder: Encoder, out_channels: int = 256, extra_blocks: ExtraBlock = "maxpool") -> None:
        super().__init__()
        self.body = encoder
        extra = _extra(extra_blocks, out_channels)
        self.fpn = FeaturePyramidNetwork(encoder.out_channels, out_channels, extra_blocks=extra)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        levels = self.body(x).values()
        return self.fpn(OrderedDict((str(i), level) for i, level in enumerate(levels)))


def _extra(kind: str, out_channels: int) -> nn.Module | None:
    if kind == "maxpool":
        return LastLevelMaxPool()
    if kind == "p6p7":  # from the FPN's last output, as torchvision's RetinaNet-v2
        return LastLevelP6P7(out_channels, out_channels)
    if kind == "none":
        return None
    raise ConfigError(f"Unknown FPN extra block {kind!r}; choose one of: maxpool, p6p7, none")


def backbone_with_fpn(
    name: str,
    *,
    out_strides: Iterable[int] | None = (4, 8, 16, 32),
    out_channels: int = 256,
    extra_blocks: ExtraBlock = "maxpool",
    **options: Any,
) -> BackboneWithFPN:
    """:func:`~visionsuite.backbones.create_encoder` ``(name, out_strides=…, **options)`` under an FPN
    (strides 4–32 by default, as torchvision's ``resnet_fpn_backbone``)."""
    return BackboneWithFPN(create_encoder(name, out_strides=out_strides, **options), out_channels, extra_blocks)
