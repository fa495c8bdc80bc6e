"""SegNet's decoder (Badrinarayanan et al., PAMI 2017): upsample with the encoder's pooling indices.

Each decoder stage mirrors one VGG block: ``max_unpool2d`` puts every value back where the
encoder's max-pooling found it (a sparse map, no learned upsampling, no skip features to keep),
to the exact size the block had before pooling, so odd sizes (45 → 22 → 45) come back intact;
then as many 3x3 conv → BN → ReLU layers as the encoder block had, the last one narrowing to the
next shallower block's width.

``max_unpool2d`` has no deterministic kernel (PyTorch refuses it under
``torch.use_deterministic_algorithms``, which ``trainer.deterministic: true`` turns on, on CPU
and CUDA alike); :func:`unpool` then builds the same map from a mask instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.backbones.layers import conv_norm_act
from visionsuite.backbones.vgg import PooledFeatures


def unpool(x: Tensor, indices: Tensor, size: Sequence[int]) -> Tensor:
    """``F.max_unpool2d(x, indices, 2, 2, output_size=size)`` for 2x2, stride-2 pooling indices;
    in deterministic mode, the same values and gradients without its scatter."""
    if not torch.are_deterministic_algorithms_enabled():
        return F.max_unpool2d(x, indices, 2, 2, output_size=list(size))
    return unpool_by_mask(x, indices, size)


def unpool_by_mask(x: Tensor, indices: Tensor, size: Sequence[int]) -> Tensor:
    """Each value copied to its 2x2 window and kept where the window's flat index is the
    pooling's argmax: elementwise operations only, so deterministic everywhere."""
    b, c, h, w = x.shape
    height, width = int(size[0]), int(size[1])
    copies = x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    argmax = indices[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    rows = torch.arange(2 * h, device=x.device).view(-1, 1)
    cols = torch.arange(2 * w, device=x.device).view(1, -1)
    out = torch.where(argmax == rows * width + cols, copies, 0)
    # floor-mode pooling left an odd last row/column out of every window: zeros, as max_unpool2d
    return F.pad(out, (0, width - 2 * w, 0, height - 2 * h))


class SegNetDecoderStage(nn.Module):
    """Unpool with the indices, then ``len(widths)`` conv-BN-ReLU layers of the given widths."""

    def __init__(self, in_ch: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers, ch = [], in_ch
        for width in widths:
            layers.append(conv_norm_act(ch, width, 3, norm="batch", act=nn.ReLU))
            ch = width
        self.convs = nn.Sequential(*layers)

    def forward(self, x: Tensor, pooled: PooledFeatures) -> Tensor:
        size = [int(s) for s in pooled.unpooled_size]  # plain ints: traced shapes are tensors there
        x = unpool(x, pooled.indices, size)
        return self.convs(x)


class SegNetDecoder(nn.Module):
    """Stages deepest first; ``blocks`` gives (convs, width) of each encoder block, shallow first."""

    def __init__(self, blocks: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for k in reversed(range(len(blocks))):
            n_convs, width = blocks[k]
            out = blocks[k - 1][1] if k > 0 else width  # the first block's decoder keeps its width
            self.stages.append(SegNetDecoderStage(width, [width] * (n_convs - 1) + [out]))
        self.out_channels = blocks[0][1]

    def forward(self, pyramid: Sequence[PooledFeatures]) -> Tensor:
        x = pyramid[-1].features
        for stage, pooled in zip(self.stages, reversed(pyramid), strict=True):
            x = stage(x, pooled)
        return x
