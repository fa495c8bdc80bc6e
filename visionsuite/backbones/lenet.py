"""LeNet-1 and LeNet-5 (LeCun et al., 1998): tanh, average pooling, 5x5 convolutions.

LeNet-5 on 28x28 input pads the first convolution by 2, as the paper's 32x32 input did. The
head pools adaptively to the paper's grid (4x4 / 5x5), so larger inputs work unchanged.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionsuite.backbones._base import Backbone, BuilderTable, FeatureInfo
from visionsuite.backbones.layers import (
    ClassifierHead,
    activation_factory,
    build_with_options,
    check_padding_mode,
    init_weights,
    make_norm,
    make_pool,
    smallest_input,
)

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()


class LeNet(Backbone):
    """Two conv/pool stages then a fully connected head (``fc`` widths; empty for LeNet-1)."""

    default_input_size = (1, 28, 28)

    def __init__(
        self,
        *,
        filters: tuple[int, int],
        fc: tuple[int, ...],
        first_padding: int,
        num_classes: int = 10,
        in_chans: int = 1,
        activation: str = "tanh",
        negative_slope: float = 0.01,
        pooling: str = "avg",
        norm: str = "none",
        padding_mode: str = "zeros",
        dropout: float = 0.0,
        width_mult: float = 1.0,
        init: str = "default",
    ) -> None:
        """
        Args:
            activation / negative_slope: the non-linearity (the paper: tanh).
            pooling: ``avg`` (the paper's subsampling) or ``max``.
            norm: ``batch`` adds batch norm after each convolution (not in the paper).
            width_mult: scales every filter count and hidden width (1.0 = the paper's).
        """
        super().__init__()
        act = activation_factory(activation, negative_slope=negative_slope)
        c1, c2 = (max(1, round(c * width_mult)) for c in filters)
        pm = check_padding_mode(padding_mode)
        self.stages["stage1"] = nn.Sequential(
            nn.Conv2d(in_chans, c1, 5, padding=first_padding, padding_mode=pm), make_norm(norm, c1), act(),
            make_pool(pooling, 2, 2),
        )  # fmt: skip
        self.stages["stage2"] = nn.Sequential(
            nn.Conv2d(c1, c2, 5, padding_mode=pm), make_norm(norm, c2), act(), make_pool(pooling, 2, 2)
        )
        self.feature_info = [FeatureInfo("stage1", 2, c1), FeatureInfo("stage2", 4, c2)]
        side = smallest_input([(5, 1, first_padding), (2, 2, 0), (5, 1, 0), (2, 2, 0)])
        self.min_input_size = (side, side)
        grid = ((28 + 2 * first_padding - 4) // 2 - 4) // 2  # the paper's map size before the FC layers
        hidden = tuple(max(1, round(w * width_mult)) for w in fc)
        self.head = ClassifierHead(c2, num_classes, hidden=hidden, pool_size=grid, dropout=dropout, act=act)
        self.num_features = c2
        self.num_classes = num_classes
        init_weights(self, init)


@BACKBONES.add("lenet1")
def lenet1(*, num_classes: int = 10, in_chans: int = 1, **options: Any) -> LeNet:
    """LeNet-1: 4 then 12 filters (5x5 valid), average pooling, tanh, linear classifier."""
    fixed = {"filters": (4, 12), "fc": (), "first_padding": 0}
    return build_with_options(LeNet, options, num_classes=num_classes, in_chans=in_chans, **fixed)


@BACKBONES.add("lenet5")
def lenet5(*, num_classes: int = 10, in_chans: int = 1, **options: Any) -> LeNet:
    """LeNet-5: 6 then 16 filters, FC 120-84-classes."""
    fixed = {"filters": (6, 16), "fc": (120, 84), "first_padding": 2}
    return build_with_options(LeNet, options, num_classes=num_classes, in_chans=in_chans, **fixed)
