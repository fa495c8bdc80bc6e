"""The convolutional encoder and its mirrored decoder, shared by the autoencoder and the VAE.

The encoder is a chain of the backbone library's ``conv_norm_act`` blocks, each stage halving the
side (28 → 14 → 7, 32 → 16 → 8), then a linear layer to ``out_features``. The decoder mirrors it:
a linear layer back to the smallest feature map, then per stage a ×2 upsampling, chosen by
``upsample``:

- ``"nearest"``: nearest-neighbour ×2 then a 3x3 ``conv_norm_act`` block, and a final 3x3 conv to
  the image channels. It avoids the checkerboard artefacts of transposed convs (Odena et al., 2016)
  but runs its widest convs at full resolution: ~12M multiply-adds per 28x28 image for widths
  (32, 64), ~4x slower per step than ``"transposed"`` on this project's CPU.
- ``"transposed"``: a 4x4 stride-2 transposed conv per stage (the DCGAN / Keras CVAE decoder), the
  last one straight to the image channels: the work stays at the input side of each stage.

``fc_hidden`` puts fully connected hidden layers between the conv features and the code (mirrored
in the decoder): a VAE's Gaussian posterior is better fitted through one (the benchmark's conv VAE
uses 256; ``benchmarks/results/generative.md``).

The decoder's output has no activation: the caller chooses what it means (pixels, Bernoulli
logits, Gaussian means).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from visionsuite.backbones.layers import (
    activation_factory,
    conv_norm_act,
    make_norm,
)
from visionsuite.core.registry import Registry
from visionsuite.errors import ConfigError


def bottleneck_side(image_size: int, stages: int) -> int:
    """Side of the smallest feature map; the image side must halve exactly ``stages`` times."""
    if image_size % (2**stages):
        raise ConfigError(f"image size {image_size} cannot be halved {stages} times (widths has {stages} entries)")
    return image_size // 2**stages


def linear_stack(sizes: Sequence[int], act: Callable[[], nn.Module]) -> list[nn.Module]:
    """Linear layers through ``sizes`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), act()]
    return [*layers, nn.Linear(sizes[-2], sizes[-1])]


def fully_connected(sizes: Sequence[int], act: Callable[[], nn.Module]) -> nn.Module:
    """:func:`linear_stack` as one module (a bare ``nn.Linear`` when there is no hidden layer)."""
    layers = linear_stack(sizes, act)
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


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
        fc_hidden: Sequence[int] = (),
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
        self.fc = fully_connected([prev * side * side, *fc_hidden, out_features], act)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


def _nearest(rev: list[int], out_chans: int, *, depth: int, norm: str, act: Callable[[], nn.Module]) -> list[nn.Module]:
    """Per stage nearest-neighbour ×2 then a 3x3 block; a final 3x3 conv to the image channels."""
    layers: list[nn.Module] = []
    outs = [*rev[1:], rev[-1]]
    for width, out in zip(rev, outs, strict=True):
        layers += [conv_norm_act(width, width, 3, norm=norm, act=act) for _ in range(depth - 1)]
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_act(width, out, 3, norm=norm, act=act)]
    layers.append(conv_norm_act(rev[-1], out_chans, 3, norm="none", act=None))
    return layers


def _transposed(rev: list[int], out_chans: int, *, depth: int, norm: str, act: Callable[[], nn.Module]) -> list[nn.Module]:
    """Per stage a 4x4 stride-2 transposed conv, the last one straight to the image channels."""
    layers: list[nn.Module] = []
    outs = [*rev[1:], out_chans]
    for i, (width, out) in enumerate(zip(rev, outs, strict=True)):
        layers += [conv_norm_act(width, width, 3, norm=norm, act=act) for _ in range(depth - 1)]
        last = i == len(rev) - 1
        layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1, bias=last or norm == "none"))
        if not last:
            layers += [make_norm(norm, out), act()]
    return layers


#: the decoder's ×2 step by name (``upsample`` of the autoencoder and the VAE; ``visionsuite list
#: generative``): the layers from the smallest feature map (widths reversed) to the image.
UPSAMPLINGS: Registry[Callable[..., list[nn.Module]]] = Registry("upsample")
UPSAMPLINGS.register("nearest")(_nearest)
UPSAMPLINGS.register("transposed")(_transposed)


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
        upsample: str = "nearest",
        fc_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__()
        act = activation_factory(activation)
        stages = UPSAMPLINGS[upsample]
        rev = list(widths)[::-1]
        self.side = bottleneck_side(image_size, len(rev))
        self.fc = nn.Sequential(fully_connected([in_features, *fc_hidden[::-1], rev[0] * self.side**2], act), act())
        self.unflatten = nn.Unflatten(1, (rev[0], self.side, self.side))
        self.features = nn.Sequential(*stages(rev, out_chans, depth=depth, norm=norm, act=act))

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.unflatten(self.fc(z)))
