"""The convolutional encoder and its mirrored decoder, shared by the autoencoder and the VAE.

The encoder is a chain of the backbone library's ``conv_norm_act`` blocks, each stage halving the
side (28 → 14 → 7, 32 → 16 → 8), then a linear layer to ``out_features``. The decoder mirrors it:
a linear layer back to the smallest feature map, then per stage a nearest-neighbour ×2 upsample and
a ``conv_norm_act`` block (upsample + conv avoids the checkerboard artefacts of transposed convs,
Odena et al., 2016), and a final 3x3 conv to the image channels with no activation: the caller
chooses what the output means (pixels, Bernoulli logits, Gaussian means).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from visionsuite.backbones.layers import activation_factory, conv_norm_act
from visionsuite.errors import ConfigError


def bottleneck_side(image_size: int, stages: int) -> int:
    """Side of the smallest feature map; the image side must halve exactly ``stages`` times."""
    if image_size % (2**stages):
        raise ConfigError(f"image size {image_size} cannot be halved {stages} times (widths has {stages} entries)")
    return image_size // 2**stages


class ConvEncoder(nn.Module):
    """[B, C, S, S] images → [B, out_features] vectors."""

    def __init__(
        self,
        in_chans: int,
        image_size: int,
        out_features: int,
        *,
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        act = activation_factory(activation)
        layers: list[nn.Module] = []
        prev = in_chans
        for width in widths:
            layers.append(conv_norm_act(prev, width, 3, stride=2, norm=norm, act=act))
            layers += [conv_norm_act(width, width, 3, norm=norm, act=act) for _ in range(depth - 1)]
            prev = width
        self.features = nn.Sequential(*layers)
        side = bottleneck_side(image_size, len(widths))
        self.fc = nn.Linear(prev * side * side, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """[B, in_features] vectors → [B, out_chans, S, S] unbounded outputs (the encoder reversed)."""

    def __init__(
        self,
        in_features: int,
        out_chans: int,
        image_size: int,
        *,
        widths: Sequence[int] = (32, 64),
        depth: int = 1,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        act = activation_factory(activation)
        rev = list(widths)[::-1]
        self.side = bottleneck_side(image_size, len(rev))
        self.fc = nn.Sequential(nn.Linear(in_features, rev[0] * self.side**2), act())
        self.unflatten = nn.Unflatten(1, (rev[0], self.side, self.side))
        layers: list[nn.Module] = []
        outs = [*rev[1:], rev[-1]]
        for width, out in zip(rev, outs, strict=True):
            layers += [conv_norm_act(width, width, 3, norm=norm, act=act) for _ in range(depth - 1)]
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_act(width, out, 3, norm=norm, act=act)]
        layers.append(conv_norm_act(rev[-1], out_chans, 3, norm="none", act=None))
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.unflatten(self.fc(z)))
