"""Input corruption for denoising autoencoders (Vincent et al., 2008): the model sees the corrupted
image and is trained to reproduce the clean one, so it cannot learn the identity.

Images are [0, 1] pixels (see :mod:`.pixels`); the noise type and level are config values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from visionsuite.core.registry import Registry
from visionsuite.errors import ConfigError


class Noise(NamedTuple):
    """One corruption: ``apply(x, level, generator)`` on [0, 1] images, and the largest level it
    accepts (``None``: any level ≥ 0)."""

    apply: Callable[[Tensor, float, torch.Generator | None], Tensor]
    max_level: float | None


def _gaussian(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + level * noise).clamp(0.0, 1.0)


def _hit(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device) < level


def _salt_pepper(x: Tensor, level: float, generator: torch.Generator | None) -> Tensor:
    hit = _hit(x, level, generator)
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


#: every input corruption by name (``AutoencoderTask.noise``; ``visionsuite list generative``).
NOISES: Registry[Noise] = Registry("noise")
NOISES.register("none")(Noise(lambda x, level, generator: x, None))
NOISES.register("gaussian")(Noise(_gaussian, None))
NOISES.register("salt_pepper")(Noise(_salt_pepper, 1.0))
NOISES.register("masking")(Noise(lambda x, level, generator: x.masked_fill(_hit(x, level, generator), 0.0), 1.0))


def check_noise(kind: str, level: float) -> None:
    """Validate a (kind, level) pair from a config: σ ≥ 0 for gaussian, p in [0, 1] otherwise."""
    top = NOISES[kind].max_level
    if level < 0 or (top is not None and level > top):
        raise ConfigError(f"noise level for {kind!r} must be {'≥ 0' if top is None else f'in [0, {top:g}]'}, got {level}")


def corrupt(x: Tensor, kind: str, level: float, *, generator: torch.Generator | None = None) -> Tensor:
    """A corrupted copy of [0, 1] images ``x``.

    * ``gaussian``: add N(0, level²) per pixel, clamp to [0, 1];
    * ``salt_pepper``: a fraction ``level`` of pixels set to 0 or 1 (half each on average);
    * ``masking``: a fraction ``level`` of pixels set to 0 (Vincent et al.'s masking noise);
    * ``none``: ``x`` unchanged.
    """
    check_noise(kind, level)
    if level == 0:
        return x
    return NOISES[kind].apply(x, level, generator)
