"""The bottom-up half of YOLOv8's neck: a PAN path over the FPN's top-down outputs.

torchvision's FPN already carries deep semantics down to the fine levels (top-down, Lin et al.
2017); PANet (Liu et al., 2018) adds the opposite path, so the coarse levels also see the fine
levels' precise localisation: ``N_1 = P_1``, ``N_{i+1} = C2f(cat(conv_s2(N_i), P_{i+1}))``. FPN
top-down + this bottom-up path is the PAN-FPN of YOLOv8, with its C2f fusion block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionsuite.backbones.layers import activation_factory, conv_norm_act

#: YOLO's batch norm (eps 1e-3, momentum 0.03) and SiLU.
_BN = {"eps": 1e-3, "momentum": 0.03}


def conv_bn_silu(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Conv → BN → SiLU, YOLOv8's ``Conv``."""
    return conv_norm_act(in_ch, out_ch, kernel_size, stride=stride, act=activation_factory("silu"), norm_kwargs=_BN)


class Bottleneck(nn.Module):
    """Two 3x3 convs, with a residual when ``shortcut`` (the neck's blocks have none)."""

    def __init__(self, channels: int, shortcut: bool = False) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_bn_silu(channels, channels, 3), conv_bn_silu(channels, channels, 3))
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.convs(x)
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """YOLOv8's CSP block: a 1x1 conv split in two halves, ``n`` bottlenecks on the second, every
    intermediate output concatenated and fused by a 1x1 conv (gradient paths of several depths)."""

    def __init__(self, in_ch: int, out_ch: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.hidden = out_ch // 2
        self.split = conv_bn_silu(in_ch, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.fuse = conv_bn_silu((2 + n) * self.hidden, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.split(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class PANBottomUp(nn.Module):
    """Bottom-up path over ``levels`` FPN maps of ``channels`` channels whose strides double from one
    level to the next; returns as many maps, finest first, all of ``channels`` channels."""

    def __init__(self, channels: int, levels: int, depth: int = 1) -> None:
        super().__init__()
        self.down = nn.ModuleList(conv_bn_silu(channels, channels, 3, stride=2) for _ in range(levels - 1))
        self.fuse = nn.ModuleList(C2f(2 * channels, channels, n=depth) for _ in range(levels - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        outs = [feats[0]]
        for down, fuse, lateral in zip(self.down, self.fuse, feats[1:], strict=True):
            x = down(outs[-1])
            if x.shape[-2:] != lateral.shape[-2:]:  # odd sizes: the encoder may round the other way
                x = F.interpolate(x, size=lateral.shape[-2:], mode="nearest")
            outs.append(fuse(torch.cat([x, lateral], dim=1)))
        return outs
