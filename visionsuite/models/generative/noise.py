"""Input corruption for denoising autoencoders (Vincent et al., 2008): the model sees the corrupted
image and is trained to reproduce the clean one, so it cannot learn the identity.

Images are [0, 1] pixels (see :mod:`.pixels`); the noise type and level are config values.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from visionsuite.backbones.layers import check_choice
from visionsuite.errors import ConfigError

NoiseKind = Literal["none", "gaussian", "salt_pepper", "masking"]
NOISE_KINDS: tuple[str, ...] = ("none", "gaussian", "salt_pepper", "masking")


def check_noise(kind: str, level: float) -> None:
    """Validate a (kind, level) pair from a config: σ ≥ 0 for gaussian, p in [0, 1] otherwise."""
    check_choice("noise", kind, NOISE_KINDS)
    if level < 0 or (kind in ("salt_pepper", "masking") and level > 1):
        raise ConfigError(f"noise level for {kind!r} must be {'≥ 0' if kind == 'gaussian' else 'in [0, 1]'}, got {level}")


def corrupt(x: Tensor, kind: str, level: float, *, generator: torch.Generator | None = None) -> Tensor:
    """A corrupted copy of [0, 1] images ``x``.

    * ``gaussian``: add N(0, level²) per pixel, clamp to [0, 1];
    * ``salt_pepper``: a fraction ``level`` of pixels set to 0 or 1 (half each on average);
    * ``masking``: a fraction ``level`` of pixels set to 0 (Vincent et al.'s masking noise);
    * ``none``: ``x`` unchanged.
    """
    check_noise(kind, level)
    if kind == "none" or level == 0:
        return x
    if kind == "gaussian":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + level * noise).clamp(0.0, 1.0)
    hit = torch.rand(x.shape, generator=generator, device=x.device) < level
    if kind == "masking":
        return x.masked_fill(hit, 0.0)
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)
