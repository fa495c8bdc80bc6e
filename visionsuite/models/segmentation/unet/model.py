"""U-Net: the classic contracting path, or any encoder that follows the encoder view, + the decoder.

The encoder interface (what ``UNet.from_encoder`` needs, the backbones' encoder view):
``encoder(x)`` returns a mapping of feature maps ordered shallow to deep, and the encoder has
``out_channels: list[int]`` and ``strides: list[int]`` in the same order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from visionsuite.models.segmentation.unet.decoder import UNetDecoder, double_conv

#: smp's U-Net decoder widths, deepest first; the first ``n`` are used for an encoder needing ``n``.
DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)


class UNetEncoder(nn.Module):
    """The paper's contracting path: double conv, then ``depth`` x (2x2 max-pool, double conv) with
    widths ``base_width * 2**k`` (64 … 1024 for the paper's depth 4); features at strides 1 … 2**depth."""

    def __init__(self, *, in_chans: int = 3, depth: int = 4, base_width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"U-Net depth must be >= 1, got {depth}")
        self.out_channels = [base_width * 2**k for k in range(depth + 1)]
        self.strides = [2**k for k in range(depth + 1)]
        self.pool = nn.MaxPool2d(2)
        self.levels = nn.ModuleList()
        in_ch = in_chans
        for width in self.out_channels:
            self.levels.append(double_conv(in_ch, width, batch_norm))
            in_ch = width

    def stage_groups(self) -> dict[str, list[nn.Module]]:
        """One stage per level (``level0`` at stride 1 …): what ``frozen_stages`` counts."""
        return {f"level{k}": [level] for k, level in enumerate(self.levels)}

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features: OrderedDict[str, Tensor] = OrderedDict()
        for k, (level, stride) in enumerate(zip(self.levels, self.strides, strict=True)):
            x = level(x if k == 0 else self.pool(x))
            features[f"stride{stride}"] = x
        return features


class UNet(nn.Module):
    """encoder → :class:`UNetDecoder` → 1x1 conv to ``num_classes``; output size == input size.

    ``UNet(num_classes=…)`` is the classic network (transposed-conv upsampling, as the paper);
    :meth:`from_encoder` puts the same decoder on any encoder (bilinear upsampling by default).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int = 3,
        depth: int = 4,
        base_width: int = 64,
        batch_norm: bool = True,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        encoder = UNetEncoder(in_chans=in_chans, depth=depth, base_width=base_width, batch_norm=batch_norm)
        self._assemble(encoder, num_classes, encoder.out_channels[-2::-1], upsample, batch_norm)

    @classmethod
    def from_encoder(
        cls,
        encoder: nn.Module,
        num_classes: int,
        *,
        decoder_channels: Sequence[int] | None = None,
        upsample: str = "bilinear",
        batch_norm: bool = True,
    ) -> UNet:
        """A U-Net whose contracting path is ``encoder`` (see the module docstring for its interface)."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        if decoder_channels is None:
            n_blocks = len(encoder.strides) - 1 + int(encoder.strides[0] > 1)
            decoder_channels = DEFAULT_DECODER_CHANNELS[:n_blocks]
        model._assemble(encoder, num_classes, decoder_channels, upsample, batch_norm)
        return model

    def _assemble(
        self, encoder: nn.Module, num_classes: int, decoder_channels: Sequence[int], upsample: str, batch_norm: bool
    ) -> None:
        self.encoder = encoder
        self.decoder = UNetDecoder(
            encoder.out_channels, encoder.strides, decoder_channels, upsample=upsample, batch_norm=batch_norm
        )
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        features = list(self.encoder(x).values())
        return self.head(self.decoder(features, x.shape[-2:]))
