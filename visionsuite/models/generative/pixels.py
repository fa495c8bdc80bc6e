"""Moving images between the data module's normalised space and the ranges generative models need.

Decision (applies to every generative model here): the data module keeps ``normalize=True`` as for
every other task, and the generative task undoes it with :func:`denormalize` using the data module's
own ``mean``/``std``. One pipeline for all tasks, and the statistics travel with the data module
instead of being repeated in configs. The VAE's Bernoulli likelihood needs pixels in [0, 1]
(:func:`denormalize`); the DCGAN generator ends in tanh, so its real images go to [-1, 1]
(:func:`to_signed`) and its samples come back with :func:`to_unit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _per_channel(values: Sequence[float], like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def denormalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo ``(x - mean) / std``: normalised [B, C, H, W] images → [0, 1] pixels (clamped)."""
    return (x * _per_channel(std, x) + _per_channel(mean, x)).clamp(0.0, 1.0)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """[0, 1] pixels → the data module's normalised space (for a feature extractor trained on it)."""
    return (x - _per_channel(mean, x)) / _per_channel(std, x)


def to_signed(x01: Tensor) -> Tensor:
    """[0, 1] → [-1, 1], the range of a tanh generator."""
    return x01 * 2.0 - 1.0


def to_unit(x_signed: Tensor) -> Tensor:
    """[-1, 1] (tanh output) → [0, 1], clamped."""
    return ((x_signed + 1.0) / 2.0).clamp(0.0, 1.0)
