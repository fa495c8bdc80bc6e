"""LeNet-1 and LeNet-5 (LeCun et al., 1998): tanh, average pooling, 5x5 convolutions.

LeNet-5 on 28x28 input pads the first convolution by 2, as the paper's 32x32 input did.
"""

from __future__ import annotations

from torch import nn

from visionsuite.backbones._base import Backbone, FeatureInfo
from visionsuite.backbones._registry import register_backbone
from visionsuite.backbones.layers import check_padding_mode, init_weights, make_activation, make_pool


class LeNet(Backbone):
    """Two conv/pool stages then a fully connected head (``fc`` widths; empty for LeNet-1)."""

    default_input_size = (1, 28, 28)
    min_input_size = (28, 28)

    def __init__(
        self,
        *,
        filters: tuple[int, int],
        fc: tuple[int, ...],
        first_padding: int,
        num_classes: int = 10,
        in_chans: int = 1,
        activation: str = "tanh",
        pooling: str = "avg",
        padding_mode: str = "zeros",
        dropout: float = 0.0,
        init: str = "default",
    ) -> None:
        super().__init__()
        c1, c2 = filters
        pm = check_padding_mode(padding_mode)
        self.stages["stage1"] = nn.Sequential(
            nn.Conv2d(in_chans, c1, 5, padding=first_padding, padding_mode=pm),
            make_activation(activation),
            make_pool(pooling, 2, 2),
        )
        self.stages["stage2"] = nn.Sequential(
            nn.Conv2d(c1, c2, 5, padding_mode=pm),
            make_activation(activation),
            make_pool(pooling, 2, 2),
        )
        self.feature_info = [FeatureInfo("stage1", 2, c1), FeatureInfo("stage2", 4, c2)]
        side = (28 + 2 * first_padding - 4) // 2 - 4  # 28x28 input → spatial size before the last pool
        flat = c2 * (side // 2) ** 2
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat
        for hidden in fc:
            layers += [nn.Linear(width, hidden), make_activation(activation), nn.Dropout(dropout)]
            width = hidden
        if num_classes > 0:
            layers.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*layers)
        self.num_features = c2
        self.num_classes = num_classes
        init_weights(self, init)

    def forward_head(self, x, *, pre_logits: bool = False):  # type: ignore[override]
        if pre_logits:
            return self.head[:-1](x) if self.num_classes > 0 else self.head(x)
        return self.head(x)


@register_backbone("lenet1")
def lenet1(*, num_classes: int = 10, in_chans: int = 1, **options) -> LeNet:
    """LeNet-1: 4 then 12 filters (5x5 valid), average pooling, tanh, linear classifier."""
    return LeNet(filters=(4, 12), fc=(), first_padding=0, num_classes=num_classes, in_chans=in_chans, **options)


@register_backbone("lenet5")
def lenet5(*, num_classes: int = 10, in_chans: int = 1, **options) -> LeNet:
    """LeNet-5: 6 then 16 filters, FC 120-84-classes."""
    return LeNet(filters=(6, 16), fc=(120, 84), first_padding=2, num_classes=num_classes, in_chans=in_chans, **options)
