"""SegNet's decoder (Badrinarayanan et al., PAMI 2017): upsample with the encoder's pooling indices.

Each decoder stage mirrors one VGG block: ``max_unpool2d`` puts every value back where the
encoder's max-pooling found it (a sparse map, no learned upsampling, no skip features to keep),
to the exact size the block had before pooling, so odd sizes (45 → 22 → 45) come back intact;
then as many 3x3 conv → BN → ReLU layers as the encoder block had, the last one narrowing to the
next shallower block's width.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

from visionsuite.backbones.layers import conv_norm_act
from visionsuite.backbones.vgg import PooledFeatures


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
        x = F.max_unpool2d(x, pooled.indices, 2, 2, output_size=size)
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
