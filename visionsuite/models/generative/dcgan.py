"""DCGAN (Radford et al., 2016): a generator of transposed convolutions with batch norm and ReLU
ending in tanh, and a discriminator of strided convolutions with LeakyReLU(0.2), batch norm on every
layer but the first, no pooling and no fully connected hidden layers; weights from N(0, 0.02).

Sizes: the networks grow from / shrink to a ``base`` map of 4x4 (32x32 → 4·2³) or 7x7
(28x28 → 7·2²), so Fashion-MNIST needs no padding. Options beyond the paper:

* ``num_classes > 0``: class-conditional. The generator concatenates a label embedding to z; the
  discriminator adds a projection term <embed(y), Σ features> (Miyato & Koyama, 2018).
* ``spectral_norm``: spectral normalisation on every discriminator layer (Miyato et al., 2018),
  used with the hinge loss; ``norm="none"`` drops batch norm from the critic (needed for WGAN-GP,
  whose per-sample gradient penalty batch norm would couple).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from visionsuite.backbones.layers import activation_factory, conv_norm_act, make_norm
from visionsuite.errors import ConfigError


def base_side(image_size: int) -> tuple[int, int]:
    """(base side, number of ×2 stages) for ``image_size`` = 4·2ᵏ or 7·2ᵏ (k ≥ 1)."""
    for base in (4, 7):
        k, side = 0, image_size
        while side > base and side % 2 == 0:
            side, k = side // 2, k + 1
        if side == base and k >= 1:
            return base, k
    raise ConfigError(f"DCGAN needs an image size of 4·2^k or 7·2^k (e.g. 28, 32, 64), got {image_size}")


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z [B, latent_dim] (+ labels [B]) → images [B, out_chans, S, S] in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        out_chans: int = 1,
        image_size: int = 28,
        *,
        width: int = 64,
        num_classes: int = 0,
        embed_dim: int = 50,
    ) -> None:
        """``width``: channels of the last hidden layer (doubling towards the base map)."""
        super().__init__()
        base, stages = base_side(image_size)
        self.latent_dim, self.num_classes, self.image_size = latent_dim, num_classes, image_size
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        in_dim = latent_dim + (embed_dim if num_classes > 0 else 0)
        chans = [width * 2 ** (stages - 1 - i) for i in range(stages)]  # e.g. 256, 128, 64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, chans[0], base, 1, 0, bias=False), make_norm("batch", chans[0]), nn.ReLU(True)
        ]
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), make_norm("batch", b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], out_chans, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """images [B, in_chans, S, S] (+ labels [B]) → one real/fake score (a logit) per image [B]."""

    def __init__(
        self,
        in_chans: int = 1,
        image_size: int = 28,
        *,
        width: int = 64,
        num_classes: int = 0,
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        base, stages = base_side(image_size)
        self.num_classes = num_classes
        act = activation_factory("leaky_relu", negative_slope=0.2)
        chans = [width * 2**i for i in range(stages)]  # e.g. 64, 128, 256
        layers: list[nn.Module] = [conv_norm_act(in_chans, chans[0], 4, stride=2, padding=1, norm="none", act=act)]
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers.append(conv_norm_act(a, b, 4, stride=2, padding=1, norm=norm, act=act))
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(chans[-1], 1, base, 1, 0)
        self.embed = nn.Embedding(num_classes, chans[-1]) if num_classes > 0 else None
        dcgan_init(self)
        if spectral_norm:
            for m in list(self.modules()):
                if isinstance(m, nn.Conv2d | nn.Embedding):
                    _spectral_norm(m)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.features(x)
        out = self.head(h).flatten()
        if self.embed is not None:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            out = out + (self.embed(labels) * h.sum(dim=(2, 3))).sum(1)
        return out

