"""U-Net's expanding path over any encoder's feature maps (Ronneberger et al., 2015).

The decoder receives the encoder's features shallow to deep with their channel counts and
strides (the encoder view: strides 1-16 for the classic contracting path, 2-32 for an ImageNet
backbone, 1-32 for a CIFAR stem). From the deepest map up, each block upsamples to the next
shallower feature's size, concatenates it (the skip) and applies two 3x3 conv → [BN] → ReLU. When
the shallowest feature is coarser than the input (stride 2 and up), one last block without a
skip upsamples to the input size, so the output always has the input's height and width.

Sizes that do not divide evenly: a floor-pooling encoder maps 45 → 22, a padded stride-2 conv maps
45 → 23; the upsampled map is therefore padded *or cropped* to the skip's exact size
(``F.pad`` with negative amounts crops), instead of forcing inputs to multiples of 32.
``upsample="transpose"`` is the paper's learned 2x2 up-convolution (halving channels);
``"bilinear"``/``"nearest"`` interpolate straight to the skip's size (no pad needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.backbones.layers import check_choice, conv_norm_act

UPSAMPLING = ("transpose", "bilinear", "nearest")


def double_conv(in_ch: int, out_ch: int, batch_norm: bool = True) -> nn.Sequential:
    """U-Net's unit: two 3x3 conv → [BN] → ReLU (padding 1, so sizes are kept)."""
    norm = "batch" if batch_norm else "none"
    return nn.Sequential(
        conv_norm_act(in_ch, out_ch, 3, norm=norm, act=nn.ReLU),
        conv_norm_act(out_ch, out_ch, 3, norm=norm, act=nn.ReLU),
    )


def match_size(x: Tensor, size: Sequence[int]) -> Tensor:
    """Pad (zeros) or crop ``x`` symmetrically to spatial ``size``; an odd pixel goes on / comes off
    the bottom and right."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    top, left = int(dh / 2), int(dw / 2)  # rounded towards zero, for crops (negative) as for pads
    return F.pad(x, [left, dw - left, top, dh - top])


class UpBlock(nn.Module):
    """Upsample by ``factor`` to the skip's size, concatenate the skip (if any), double conv."""

    def __init__(
        self, in_ch: int, skip_ch: int, out_ch: int, factor: int, *, upsample: str, batch_norm: bool
    ) -> None:
        super().__init__()
        self.mode = check_choice("U-Net upsample", upsample, UPSAMPLING)
        if upsample == "transpose":
            self.up: nn.Module | None = nn.ConvTranspose2d(in_ch, in_ch // 2, factor, stride=factor)
            in_ch //= 2
        else:
            self.up = None
        self.convs = double_conv(in_ch + skip_ch, out_ch, batch_norm)

    def forward(self, x: Tensor, size: Sequence[int], skip: Tensor | None = None) -> Tensor:
        if self.up is not None:
            x = match_size(self.up(x), size)
        else:
            x = F.interpolate(x, size=tuple(size), mode=self.mode)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.convs(x)


class UNetDecoder(nn.Module):
    """The expanding path for features with ``encoder_channels`` at ``encoder_strides`` (shallow first).

    ``decoder_channels`` are the widths of the blocks, deepest first: one per skip level, plus one
    for the final no-skip block when the shallowest stride is above 1.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        decoder_channels: Sequence[int],
        *,
        upsample: str = "bilinear",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        channels, strides = list(encoder_channels), list(encoder_strides)
        if len(channels) != len(strides) or len(channels) < 2 or strides != sorted(set(strides)):
            raise ValueError(f"U-Net needs >= 2 features with increasing strides, got {strides} / {channels}")
        self.needs_final = strides[0] > 1
        n_blocks = len(channels) - 1 + int(self.needs_final)
        if len(decoder_channels) != n_blocks:
            raise ValueError(
                f"decoder_channels needs {n_blocks} widths for strides {strides}, got {list(decoder_channels)}"
            )
        self.blocks = nn.ModuleList()
        in_ch = channels[-1]
        targets = list(zip(channels[:-1], strides[:-1], strict=True))[::-1] + ([(0, 1)] if self.needs_final else [])
        prev_stride = strides[-1]
        for out_ch, (skip_ch, stride) in zip(decoder_channels, targets, strict=True):
            factor = prev_stride // stride
            self.blocks.append(UpBlock(in_ch, skip_ch, out_ch, factor, upsample=upsample, batch_norm=batch_norm))
            in_ch, prev_stride = out_ch, stride
        self.out_channels = in_ch

    def forward(self, features: Sequence[Tensor], size: Sequence[int]) -> Tensor:
        """``features`` shallow to deep; ``size`` is the input's (height, width)."""
        x = features[-1]
        skips = list(features[:-1])[::-1]
        for i, block in enumerate(self.blocks):
            skip = skips[i] if i < len(skips) else None
            x = block(x, skip.shape[-2:] if skip is not None else size, skip)
        return x
